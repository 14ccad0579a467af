package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/actors/directory"
	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
	"google.golang.org/protobuf/proto"
)

// GET /v1/export[?channel=ID] (API key only) streams NDJSON: every user,
// then each channel followed by its members and its messages in segment
// order, users and channels in key order (persistence.ScopeLess: shorter
// ids first, then byte by byte). The gateway never holds more than a page
// of any of it: ids come from every host node's listing, merged; a
// channel's records from the channel, page by page (channel.OpExport).
//
// Once the first line is out the status is 200; a failure after that ends
// the stream with an {"kind":"error"} line and a cut connection, so a
// reader can tell a truncated export from a whole one.

// exporter writes one export.
type exporter struct {
	g   *Gateway
	ctx context.Context
	w   *bufio.Writer
	f   http.Flusher
	rw  http.ResponseWriter
	// started is set once the 200 and the first bytes are out.
	started bool
}

// exportPageBytes bounds one page a channel answers.
const exportPageBytes = 256 << 10

func (g *Gateway) serveExport(w http.ResponseWriter, r *http.Request) {
	_, apiKey, _, ok := g.begin(w, r)
	if !ok {
		return
	}
	defer g.end()
	if !apiKey {
		writeHTTPError(w, 0, apiKeyOnly())
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "channel" {
			writeHTTPError(w, 0, protocol.Errorf(protocol.CodeBadRequest, "unknown query parameter %q: GET %s takes channel", k, protocol.PathExport))
			return
		}
	}
	ch := q.Get("channel")
	if q.Has("channel") {
		if perr := g.checkID("channel", ch); perr != nil {
			writeHTTPError(w, 0, perr)
			return
		}
	}
	ex := &exporter{g: g, ctx: r.Context(), w: bufio.NewWriterSize(w, 64<<10), rw: w}
	ex.f, _ = w.(http.Flusher)
	var err error
	if ch != "" {
		err = ex.channel(ch, true)
	} else {
		err = ex.all()
	}
	if err == nil {
		ex.start()
		err = ex.w.Flush()
	}
	if err != nil {
		ex.fail(err)
	}
}

// start sends the status and headers before the first line.
func (ex *exporter) start() {
	if ex.started {
		return
	}
	ex.started = true
	h := ex.rw.Header()
	h.Set("Content-Type", protocol.ContentTypeNDJSON)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	ex.rw.WriteHeader(http.StatusOK)
}

// line writes one record.
func (ex *exporter) line(b []byte) error {
	ex.start()
	if _, err := ex.w.Write(b); err != nil {
		return err
	}
	return ex.w.WriteByte('\n')
}

// flush sends what is buffered (after each page, so a slow export still
// streams).
func (ex *exporter) flush() error {
	if err := ex.w.Flush(); err != nil {
		return err
	}
	if ex.f != nil {
		ex.f.Flush()
	}
	return nil
}

// fail ends the export: an error reply when nothing was sent yet, else
// an error line and a cut connection.
func (ex *exporter) fail(err error) {
	var perr *protocol.Error
	if !errors.As(err, &perr) {
		perr = protocol.Errorf(protocol.CodeUnavailable, "export failed: %v", err)
	}
	if !ex.started {
		writeHTTPError(ex.rw, 0, perr)
		return
	}
	b, _ := json.Marshal(struct {
		Kind string `json:"kind"`
		*protocol.Error
	}{"error", perr})
	_ = ex.line(b)
	_ = ex.flush()
	panic(http.ErrAbortHandler) // no clean end: the reader sees the cut
}

func (ex *exporter) all() error {
	var batch []string
	flushUsers := func() error {
		err := ex.users(batch)
		batch = batch[:0]
		return err
	}
	err := ex.g.eachScope(ex.ctx, clusterpb.Kind_KIND_USER, func(id string) error {
		batch = append(batch, id)
		if len(batch) == maxUsersPerOp {
			return flushUsers()
		}
		return nil
	})
	if err == nil {
		err = flushUsers()
	}
	if err != nil {
		return err
	}
	return ex.g.eachScope(ex.ctx, clusterpb.Kind_KIND_CHANNEL, func(id string) error {
		if directory.IsShard(id) {
			return nil // the public-channel directory's own scopes
		}
		return ex.channel(id, false)
	})
}

// users writes the records of users (those with a profile), in order.
func (ex *exporter) users(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	reqs := make([]*clusterpb.Request, len(ids))
	for i, id := range ids {
		reqs[i] = &clusterpb.Request{Kind: kindUser, Target: id, Op: user.OpGet, Caller: &clusterpb.Caller{Admin: true}}
	}
	reps := ex.g.gatherRetrying(ex.ctx, reqs)
	for _, rep := range reps {
		if rep.Error != nil {
			if protocol.Code(rep.Error.Code) == protocol.CodeNotFound {
				continue // a scope with presence or files but no profile
			}
			return replyError(rep)
		}
		var res struct {
			User protocol.User `json:"user"`
		}
		if err := json.Unmarshal(rep.Result, &res); err != nil {
			return err
		}
		u := res.User
		b, _ := json.Marshal(protocol.UserRecord{Kind: protocol.KindUser, ID: u.ID, Name: u.Name, Description: u.Description,
			Image: u.Image, Metadata: u.Metadata, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt})
		if err := ex.line(b); err != nil {
			return err
		}
	}
	return ex.flush()
}

// channel writes one channel's records. A channel that does not exist is
// skipped, or (only) not found.
func (ex *exporter) channel(id string, only bool) error {
	page := func(a channel.ExportArgs) (channel.ExportHead, error) {
		a.MaxBytes = exportPageBytes
		args, _ := json.Marshal(a)
		rep := ex.g.requestRetrying(ex.ctx, &clusterpb.Request{Kind: kindChannel, Target: id, Op: channel.OpExport, Args: args,
			Caller: &clusterpb.Caller{Admin: true}})
		var h channel.ExportHead
		if rep.Error != nil {
			return h, replyError(rep)
		}
		head, rest, _ := bytes.Cut(rep.Result, []byte("\n"))
		if err := json.Unmarshal(head, &h); err != nil {
			return h, err
		}
		for len(rest) > 0 {
			var l []byte
			l, rest, _ = bytes.Cut(rest, []byte("\n"))
			if err := ex.line(l); err != nil {
				return h, err
			}
		}
		return h, ex.flush()
	}
	h, err := page(channel.ExportArgs{Part: channel.ExportChannel})
	var perr *protocol.Error
	if errors.As(err, &perr) && perr.Code == protocol.CodeNotFound && !only {
		return nil
	}
	if err != nil {
		return err
	}
	upto := h.Upto
	for a := (channel.ExportArgs{Part: channel.ExportMembers}); ; a.After = h.After {
		if h, err = page(a); err != nil || h.Done {
			break
		}
	}
	for a := (channel.ExportArgs{Part: channel.ExportMessages, Upto: upto}); err == nil; a.AfterSegment = h.AfterSegment {
		if h, err = page(a); err != nil || h.Done {
			break
		}
	}
	return err
}

// requestRetrying sends a request, again while it answers unavailable,
// for up to a minute (a channel moving, a node restarting); ctx ends it.
func (g *Gateway) requestRetrying(ctx context.Context, req *clusterpb.Request) *clusterpb.Reply {
	return g.retrying(ctx, req, func(r *clusterpb.Request, done answer) { g.cl.Request(r, g.cfg.RequestTimeout, done) })
}

// nodeRetrying is requestRetrying to one node.
func (g *Gateway) nodeRetrying(ctx context.Context, node string, req *clusterpb.Request) *clusterpb.Reply {
	return g.retrying(ctx, req, func(r *clusterpb.Request, done answer) { g.cl.RequestNode(node, r, g.cfg.RequestTimeout, done) })
}

func (g *Gateway) retrying(ctx context.Context, req *clusterpb.Request, send func(*clusterpb.Request, answer)) *clusterpb.Reply {
	deadline := time.Now().Add(time.Minute)
	wait := 50 * time.Millisecond
	for {
		r := proto.Clone(req).(*clusterpb.Request) // the last one may still be on its way out
		rep := await(ctx, func(done answer) { send(r, done) })
		if rep.Error == nil || protocol.Code(rep.Error.Code) != protocol.CodeUnavailable || time.Now().After(deadline) || ctx.Err() != nil {
			return rep
		}
		w := wait
		if ms := rep.Error.RetryAfterMs; ms > 0 {
			w = time.Duration(ms) * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return rep
		case <-time.After(w):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// gatherRetrying sends requests at once, each retried as requestRetrying
// does; the replies come back in order.
func (g *Gateway) gatherRetrying(ctx context.Context, reqs []*clusterpb.Request) []*clusterpb.Reply {
	reps := make([]*clusterpb.Reply, len(reqs))
	done := make(chan struct{}, len(reqs))
	for i, req := range reqs {
		go func() {
			reps[i] = g.requestRetrying(ctx, req)
			done <- struct{}{}
		}()
	}
	for range reqs {
		<-done
	}
	return reps
}

// scopesPage is how many ids one listing request asks a node for.
const scopesPage = 500

// eachScope calls fn with the id of every scope of a kind that a host
// node serves, once each, in key order: the listings of every host node,
// merged. It stops at fn's first error.
func (g *Gateway) eachScope(ctx context.Context, kind clusterpb.Kind, fn func(id string) error) error {
	type source struct {
		node  string
		buf   []string
		after string
		done  bool
	}
	var srcs []*source
	for _, m := range g.cl.View().Members() {
		if m.IsHost() && (m.State == cluster.StateAlive || m.State == cluster.StateSuspect) {
			srcs = append(srcs, &source{node: m.Name})
		}
	}
	for {
		for _, s := range srcs {
			if len(s.buf) > 0 || s.done {
				continue
			}
			args, _ := json.Marshal(actors.ScopesArgs{Kind: kind, After: s.after, Limit: scopesPage})
			rep := g.nodeRetrying(ctx, s.node, &clusterpb.Request{Kind: clusterpb.Kind_KIND_NODE, Target: s.node, Op: actors.OpScopes, Args: args})
			if rep.Error != nil {
				return protocol.Errorf(protocol.CodeUnavailable, "listing node %s: %s", s.node, rep.Error.Message)
			}
			var res actors.ScopesResult
			if err := json.Unmarshal(rep.Result, &res); err != nil {
				return err
			}
			s.buf, s.done = res.IDs, len(res.IDs) < scopesPage
			if len(res.IDs) > 0 {
				s.after = res.IDs[len(res.IDs)-1]
			}
		}
		next, found := "", false
		for _, s := range srcs {
			if len(s.buf) > 0 && (!found || persistence.ScopeLess(s.buf[0], next)) {
				next, found = s.buf[0], true
			}
		}
		if !found {
			return nil
		}
		for _, s := range srcs {
			if len(s.buf) > 0 && s.buf[0] == next {
				s.buf = s.buf[1:]
			}
		}
		if err := fn(next); err != nil {
			return err
		}
	}
}
