package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/peerhttp"
	"github.com/switchboard-chat/switchboard/gateway/blob"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Files. POST /v1/files stores an upload's bytes in this node's blob store
// and records the file in its uploader's user actor (id, type, name, size,
// MIME, this node's name, the blob's key). A file id is
// "<32 hex digits>-<uploader's user id>", so any gateway finds the record
// from the id alone.
//
// message.send {attachments} is resolved here: the uploader's actor checks
// that the files are the sender's and records the channel they go to
// (user.OpFileUse); the send goes on to the channel with the file objects
// (channel.OpSendFiles), which embeds them and records them as its own.
//
// GET /v1/files/{id} reads the record. When the bytes are on another node
// (stage 1 keeps them on the node that took the upload), the request is
// proxied there with the caller's credentials, and that node answers it.
// The node holding the bytes serves them to the uploader, and to whoever
// one of the channels the file was sent to says may read it there
// (channel.OpFileCheck: a reader of the channel, the message not deleted).

// FilesConfig configures uploads and downloads. Zero fields take defaults.
type FilesConfig struct {
	// Store holds uploaded bytes; nil refuses uploads (503).
	Store blob.Store
	// Admit, when set, is asked before each upload whether a file of up
	// to n bytes may be stored now; an error refuses the upload (503
	// unavailable) and is logged: the disk is nearly full, or not
	// answering. Otherwise release is called once the file is stored (or
	// given up).
	Admit func(n int64) (release func(), err error)
	// MaxBytes bounds one file (zero: Limits.MaxFileBytes).
	MaxBytes int64
	// AllowedTypes are the MIME types accepted: exact ("application/pdf")
	// or a family ("image/*"); "*/*" accepts any. Whatever is accepted,
	// only images (but SVG), video and audio are served inline; the rest
	// download as attachments, sandboxed.
	AllowedTypes []string
}

// defaultFilesConfig is DefaultConfig's Files (no store: the node sets one).
func defaultFilesConfig() FilesConfig {
	return FilesConfig{
		// Any type: the operator narrows it (--file-types).
		AllowedTypes: []string{"*/*"},
	}
}

func (c *FilesConfig) withDefaults(l protocol.Limits) {
	d := defaultFilesConfig()
	if c.MaxBytes <= 0 {
		c.MaxBytes = l.MaxFileBytes
	}
	if len(c.AllowedTypes) == 0 {
		c.AllowedTypes = d.AllowedTypes
	}
}

// fileKeyLen is the length of a file id's random part (its blob key).
const fileKeyLen = 32

type files struct {
	g   *Gateway
	cfg FilesConfig
}

func newFiles(g *Gateway) *files { return &files{g: g, cfg: g.cfg.Files} }

// parseFileID splits a file id into its blob key and its uploader.
func parseFileID(id string) (key, owner string, ok bool) {
	if len(id) < fileKeyLen+2 || id[fileKeyLen] != '-' {
		return "", "", false
	}
	key, owner = id[:fileKeyLen], id[fileKeyLen+1:]
	for i := 0; i < len(key); i++ {
		if !(key[i] >= '0' && key[i] <= '9' || key[i] >= 'a' && key[i] <= 'f') {
			return "", "", false
		}
	}
	return key, owner, true
}

// httpUser is who an HTTP request is from.
type httpUser struct {
	id    string
	admin bool
}

// authHTTP authenticates a files request: "Authorization: Bearer <session
// JWT>", or in development auth mode "Authorization: Dev <user id>"; and
// takes one of the user's HTTP requests (apirate.go).
func (g *Gateway) authHTTP(r *http.Request) (httpUser, *protocol.Error) {
	u, perr := g.fileCaller(r)
	if perr == nil {
		perr = g.apiRates.take(u.id, time.Now())
	}
	return u, perr
}

func (g *Gateway) fileCaller(r *http.Request) (httpUser, *protocol.Error) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Bearer") && cred != "":
		sess, perr := g.auth.Session(cred)
		if perr != nil {
			return httpUser{}, perr
		}
		return httpUser{id: sess.User, admin: sess.Admin}, nil
	case strings.EqualFold(scheme, "Dev") && g.cfg.DevAuth:
		if perr := checkID("user id", cred, g.cfg.Limits.MaxIDLen); perr != nil {
			return httpUser{}, perr
		}
		return httpUser{id: cred}, nil
	}
	if g.cfg.DevAuth {
		return httpUser{}, protocol.Errorf(protocol.CodeUnauthenticated, "Authorization: Bearer <session token> or (development auth) Dev <user id> required")
	}
	return httpUser{}, protocol.Errorf(protocol.CodeUnauthenticated, "Authorization: Bearer <session token> required")
}

// writeHTTPError answers e with its status (status 0: the code's, see
// protocol.HTTPStatus), WWW-Authenticate on a 401 and Retry-After (whole
// seconds, rounded up) on a 429 or 503.
func writeHTTPError(w http.ResponseWriter, status int, e *protocol.Error) {
	if status == 0 {
		status = protocol.HTTPStatus(e.Code)
	}
	h := w.Header()
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.FormatInt(max((e.RetryAfterMS+999)/1000, 1), 10))
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(protocol.ErrorBody{Error: e})
}

// callSync routes a request and waits for its reply or ctx.
func (g *Gateway) callSync(ctx context.Context, req *clusterpb.Request) *clusterpb.Reply {
	done := make(chan *clusterpb.Reply, 1)
	g.cl.Request(req, g.cfg.RequestTimeout, func(rep *clusterpb.Reply) { done <- rep })
	select {
	case rep := <-done:
		return rep
	case <-ctx.Done():
		return &clusterpb.Reply{Error: &clusterpb.Error{Code: string(protocol.CodeUnavailable), Message: "request abandoned"}}
	}
}

// maxMIMEName bounds each of the two names of an upload's MIME type (RFC
// 6838, 4.2). The type is stored with the file and repeated in every
// message that attaches it, so it is bounded like every other field of a
// message: cluster/transport.go counts on it.
const maxMIMEName = 127

// mimeOf decides an upload's MIME type: the part's declared type, or what
// its first bytes look like when it declares none (or a generic one).
func mimeOf(declared string, head []byte) string {
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil || mt == "" || mt == "application/octet-stream" {
		mt, _, _ = mime.ParseMediaType(http.DetectContentType(head))
	}
	return strings.ToLower(mt)
}

func (f *files) allowed(mt string) bool {
	family, _, _ := strings.Cut(mt, "/")
	for _, a := range f.cfg.AllowedTypes {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "*/*" || a == mt || a == family+"/*" {
			return true
		}
	}
	return false
}

// cleanName makes an upload's file name safe to store and show: its base
// name, valid UTF-8 without control characters, at most maxLen bytes.
func cleanName(name string, maxLen int) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "." || name == "/" {
		name = ""
	}
	name = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	for len(name) > maxLen {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" {
		name = "file"
	}
	return name
}

// ServeUpload serves POST /v1/files: a multipart/form-data body with one
// part named "file". It answers 201 {file}.
func (g *Gateway) ServeUpload(w http.ResponseWriter, r *http.Request) {
	f := g.files
	who, perr := g.authHTTP(r)
	if perr != nil {
		writeHTTPError(w, 0, perr)
		return
	}
	if f.cfg.Store == nil {
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeUnavailable, "this node takes no uploads"))
		return
	}
	if f.cfg.Admit != nil {
		release, err := f.cfg.Admit(f.cfg.MaxBytes)
		if err != nil {
			g.log.Warn("upload refused", "user", who.id, "err", err)
			writeHTTPError(w, 0, protocol.Errorf(protocol.CodeUnavailable, "this node cannot store files now (its disk is nearly full or not answering); try again later"))
			return
		}
		defer release()
	}
	r.Body = http.MaxBytesReader(w, r.Body, f.cfg.MaxBytes+64<<10)
	mr, err := r.MultipartReader()
	if err != nil {
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeBadRequest, "the body must be multipart/form-data with one part named file"))
		return
	}
	var rec *user.FileRecord
	fail := func(status int, e *protocol.Error) {
		if rec != nil {
			_ = f.cfg.Store.Delete(rec.Blob)
		}
		writeHTTPError(w, status, e)
	}
	tooLarge := func() {
		fail(0, protocol.Errorf(protocol.CodeTooLarge, "a file may be at most %d bytes", f.cfg.MaxBytes))
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				tooLarge()
				return
			}
			fail(0, protocol.Errorf(protocol.CodeBadRequest, "malformed multipart body"))
			return
		}
		if part.FormName() != "file" {
			_, _ = io.Copy(io.Discard, part) // bounded by MaxBytesReader
			continue
		}
		if rec != nil {
			fail(0, protocol.Errorf(protocol.CodeBadRequest, "send one part named file"))
			return
		}
		br := bufio.NewReaderSize(part, 512)
		head, _ := br.Peek(512)
		mt := mimeOf(part.Header.Get("Content-Type"), head)
		if typ, sub, _ := strings.Cut(mt, "/"); len(typ) > maxMIMEName || len(sub) > maxMIMEName {
			fail(0, protocol.Errorf(protocol.CodeTooLong, "a MIME type's type and subtype may be at most %d bytes each", maxMIMEName))
			return
		}
		if !f.allowed(mt) {
			fail(http.StatusUnsupportedMediaType, protocol.Errorf(protocol.CodeBadRequest, "files of type %s are not accepted", mt))
			return
		}
		key := randomID() + randomID()
		size, err := f.cfg.Store.Put(r.Context(), key, br, f.cfg.MaxBytes)
		if err != nil {
			var mbe *http.MaxBytesError
			switch {
			case errors.Is(err, blob.ErrTooLarge), errors.As(err, &mbe):
				tooLarge()
			default:
				g.log.Warn("upload failed", "user", who.id, "err", err)
				fail(0, protocol.Errorf(protocol.CodeUnavailable, "storing the file failed"))
			}
			return
		}
		id := key + "-" + who.id
		rec = &user.FileRecord{
			File: protocol.File{ID: id, URL: protocol.FileURL(id), Type: protocol.FileType(mt),
				Name: cleanName(part.FileName(), g.cfg.Limits.MaxNameLen), Size: size, MIME: mt},
			Node: g.cl.Name(),
			Blob: key,
		}
		if size == 0 {
			fail(0, protocol.Errorf(protocol.CodeBadRequest, "the file is empty"))
			return
		}
	}
	if rec == nil {
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeBadRequest, "no part named file"))
		return
	}
	args, _ := json.Marshal(user.FileAddArgs{File: *rec})
	rep := g.callSync(r.Context(), &clusterpb.Request{Kind: kindUser, Target: who.id, Op: user.OpFileAdd, Args: args,
		Caller: &clusterpb.Caller{User: who.id, Admin: who.admin}})
	if rep.Error != nil {
		fail(0, replyError(rep))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", rec.URL)
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(protocol.FileResult{File: rec.File})
}

// ServeFile serves GET /v1/files/{id}.
func (g *Gateway) ServeFile(w http.ResponseWriter, r *http.Request) {
	f := g.files
	who, perr := g.authHTTP(r)
	if perr != nil {
		writeHTTPError(w, 0, perr)
		return
	}
	id := r.PathValue("id")
	notFound := protocol.Errorf(protocol.CodeNotFound, "no file %q", id)
	_, owner, ok := parseFileID(id)
	if !ok || checkID("owner", owner, g.cfg.Limits.MaxIDLen) != nil {
		writeHTTPError(w, 0, notFound)
		return
	}
	caller := &clusterpb.Caller{User: who.id, Admin: who.admin}
	args, _ := json.Marshal(user.FileGetArgs{ID: id})
	rep := g.callSync(r.Context(), &clusterpb.Request{Kind: kindUser, Target: owner, Op: user.OpFileGet, Args: args, Caller: caller})
	if rep.Error != nil {
		writeHTTPError(w, 0, replyError(rep))
		return
	}
	var got user.FileResult
	if json.Unmarshal(rep.Result, &got) != nil {
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeInternal, "internal error"))
		return
	}
	rec := got.File
	if rec.Node != g.cl.Name() {
		if peerhttp.Forwarded(r) { // served here or refused, never proxied again
			writeHTTPError(w, 0, protocol.Errorf(protocol.CodeUnavailable, "file %s is held by node %s", id, rec.Node))
			return
		}
		f.proxy(w, r, rec.Node)
		return
	}
	if who.id != rec.Owner && !f.mayRead(r.Context(), caller, &rec) {
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeForbidden, "you may not read file %s", id))
		return
	}
	if f.cfg.Store == nil {
		writeHTTPError(w, 0, notFound)
		return
	}
	b, err := f.cfg.Store.Open(rec.Blob)
	if err != nil {
		if !errors.Is(err, blob.ErrNotFound) {
			g.log.Warn("open file", "file", id, "err", err)
		}
		writeHTTPError(w, 0, notFound)
		return
	}
	defer b.Close()
	h := w.Header()
	h.Set("Content-Type", rec.MIME)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src 'self'; media-src 'self'")
	h.Set("Cache-Control", "private, max-age=3600")
	disp := "attachment"
	if rec.Type != protocol.FileOther && rec.MIME != "image/svg+xml" {
		disp = "inline"
	}
	h.Set("Content-Disposition", disp+"; filename*=UTF-8''"+url.PathEscape(rec.Name))
	http.ServeContent(w, r, "", b.ModTime(), b)
}

// mayRead asks the channels the file was sent to whether the caller may
// read it there, one after the other, until one says yes.
func (f *files) mayRead(ctx context.Context, caller *clusterpb.Caller, rec *user.FileRecord) bool {
	args, _ := json.Marshal(channel.FileCheckArgs{File: rec.ID})
	for _, ch := range rec.Channels {
		rep := f.g.callSync(ctx, &clusterpb.Request{Kind: kindChannel, Target: ch, Op: channel.OpFileCheck, Args: args, Caller: caller})
		if rep.Error == nil {
			return true
		}
	}
	return false
}

// proxy forwards a download to the node holding the file, with the
// caller's credentials, and copies the answer back.
func (f *files) proxy(w http.ResponseWriter, r *http.Request, node string) {
	m, _ := f.g.cl.View().Member(node) // an unknown one is not alive
	req, err := f.g.cfg.Peers.NewRequest(r.Context(), m, peerhttp.Public, http.MethodGet, protocol.FileURL(r.PathValue("id")))
	switch {
	case errors.Is(err, peerhttp.ErrUnreachable):
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeUnavailable, "node %s, which holds the file, is not available", node))
		return
	case err != nil:
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeInternal, "internal error"))
		return
	}
	for _, k := range []string{"Authorization", "Range", "If-Range", "If-None-Match", "If-Modified-Since"} {
		if v := r.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := f.g.cfg.Peers.Do(req)
	if err != nil {
		f.g.log.Warn("a download forwarded to the node holding the file failed", "node", node, "err", err)
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeUnavailable, "node %s did not answer", node))
		return
	}
	defer resp.Body.Close()
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Range", "Content-Disposition", "Content-Security-Policy",
		"X-Content-Type-Options", "Cache-Control", "Accept-Ranges", "ETag", "Last-Modified", "WWW-Authenticate"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// sendWithFiles routes a message.send that names attachments: the
// sender's user actor resolves them, then the channel gets the send with
// the file objects.
func (g *Gateway) sendWithFiles(o origin, ch string, args []byte, attachments []string, done answer) {
	fail := func(perr *protocol.Error) { done(errorReply(perr)) }
	if max := g.cfg.Limits.MaxAttachments; len(attachments) > max {
		fail(protocol.Errorf(protocol.CodeTooLarge, "%d attachments, the limit is %d", len(attachments), max))
		return
	}
	c := o.caller()
	ids := make([]string, 0, len(attachments))
	for _, f := range attachments {
		_, owner, ok := parseFileID(f)
		switch {
		case !ok:
			fail(protocol.Errorf(protocol.CodeNotFound, "no file %q", f))
			return
		case owner != c.User:
			fail(protocol.Errorf(protocol.CodeForbidden, "file %s was uploaded by another user", f))
			return
		}
		if !contains(ids, f) {
			ids = append(ids, f)
		}
	}
	if !o.acquire() {
		return
	}
	useArgs, _ := json.Marshal(user.FileUseArgs{IDs: ids, Channel: ch})
	g.cl.Request(&clusterpb.Request{Kind: kindUser, Target: c.User, Op: user.OpFileUse, Args: useArgs, Caller: c}, g.cfg.RequestTimeout, func(rep *clusterpb.Reply) {
		var used user.FilesResult
		if bad := decodeResult(rep, &used); bad != nil {
			o.release()
			done(bad)
			return
		}
		inner := channel.SendFilesArgs{Args: args, Files: make([]channel.AttachedFile, len(used.Files))}
		for i, f := range used.Files {
			inner.Files[i] = channel.AttachedFile{File: f.File, Owner: f.Owner}
		}
		b, _ := json.Marshal(inner)
		g.callHeld(o, &clusterpb.Request{Kind: kindChannel, Target: ch, Op: channel.OpSendFiles, Args: b}, done)
	})
}
