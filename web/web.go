// Package web serves the browser chat app (at /) and the operator console
// (at /console). Both are built from web/src with the TypeScript SDK (see
// web/README.md) into web/dist, which is committed and embedded here, so
// a node serves them without Node.js or any network access.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed dist
var dist embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	gzip  []byte // nil when compressing does not pay
	ctype string
	etag  string
}

// pages maps the app's paths to their HTML files.
var pages = map[string]string{
	"/":        "index.html",
	"/console": "console.html",
}

// csp lets pages load only their own scripts, styles and images (and
// images the app makes from downloaded files), and open WebSockets to any
// gateway (a deployment may list several).
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; " +
	"connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the app and the console, and their assets under
// /assets/; any other path is 404. Mount it at "GET /{$}", "GET /console"
// and "GET /assets/".
func Handler() http.Handler {
	assets, err := load()
	if err != nil {
		panic("web: embedded files: " + err.Error()) // the embed is fixed at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := pages[r.URL.Path]
		if !ok {
			rest, isAsset := strings.CutPrefix(r.URL.Path, "/assets/")
			if !isAsset || rest == "" || strings.Contains(rest, "/") {
				http.NotFound(w, r)
				return
			}
			name = "assets/" + rest
		}
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("ETag", a.etag)
		h.Set("Cache-Control", "no-cache") // revalidate: a new binary serves new files under the same names
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Add("Vary", "Accept-Encoding")
		if strings.HasSuffix(name, ".html") {
			h.Set("Content-Security-Policy", csp)
		}
		if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := a.body
		if a.gzip != nil && acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			body = a.gzip
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
}

// load reads every embedded file once, with its type, ETag and gzip form.
func load() (map[string]*asset, error) {
	root, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	out := map[string]*asset{}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		a := &asset{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: mime.TypeByExtension(path.Ext(p))}
		if a.ctype == "" {
			a.ctype = "application/octet-stream"
		}
		if len(body) > 1024 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(body)
			_ = zw.Close()
			if buf.Len() < len(body)*9/10 {
				a.gzip = buf.Bytes()
			}
		}
		out[p] = a
		return nil
	})
	return out, err
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
