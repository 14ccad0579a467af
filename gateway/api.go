package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The server HTTP API: every op of the table that needs no live session,
// at POST /v1/rpc/{op} and at the resource URLs the table gives some of
// them, plus the endpoints only HTTP has (api_endpoints.go). A request
// goes through the same dispatch as a WebSocket frame (dispatch.go): the
// same strict args, the same actors, the same rules. Errors carry the
// WebSocket code with an HTTP status (protocol.HTTPStatus).

// apiRequest is an HTTP API request as an origin of the dispatch. It
// holds one of the node's API slots for its whole life.
type apiRequest struct {
	c *clusterpb.Caller
}

func (a *apiRequest) caller() *clusterpb.Caller {
	return &clusterpb.Caller{User: a.c.User, Admin: a.c.Admin, Name: a.c.Name, Image: a.c.Image}
}

func (a *apiRequest) acquire() bool                                             { return true }
func (a *apiRequest) release()                                                  {}
func (a *apiRequest) channelOp(string, string, []string) func(*clusterpb.Reply) { return nil }

// apiCaller authenticates an API request:
//
//   - Authorization: Bearer <API key>: a global admin; with
//     X-Switchboard-User, that user with that user's rights.
//   - Authorization: Bearer <session JWT>: that user, as over WebSocket
//     (X-Switchboard-User, if sent, must name the same user).
//   - development auth only: X-Switchboard-User alone, or
//     Authorization: Dev <user>.
//
// The bool says whether the credential was a server API key.
func (g *Gateway) apiCaller(r *http.Request) (*clusterpb.Caller, bool, *protocol.Error) {
	as := r.Header.Get(protocol.HeaderUser)
	if as != "" {
		if perr := g.checkID(protocol.HeaderUser, as); perr != nil {
			return nil, false, perr
		}
	}
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Bearer") && cred != "":
		if g.cfg.APIKeys.Match(cred) {
			if as != "" {
				return &clusterpb.Caller{User: as}, true, nil
			}
			return &clusterpb.Caller{Admin: true}, true, nil
		}
		sess, perr := g.auth.Session(cred)
		if perr != nil {
			return nil, false, perr
		}
		if as != "" && as != sess.User {
			return nil, false, protocol.Errorf(protocol.CodeForbidden, "a session token acts as its own user only, not as %s", as)
		}
		return &clusterpb.Caller{User: sess.User, Admin: sess.Admin, Name: sess.Name, Image: sess.Image}, false, nil
	case g.cfg.DevAuth && strings.EqualFold(scheme, "Dev") && cred != "":
		if perr := g.checkID("user id", cred); perr != nil {
			return nil, false, perr
		}
		return &clusterpb.Caller{User: cred}, false, nil
	case g.cfg.DevAuth && scheme == "" && as != "":
		return &clusterpb.Caller{User: as}, false, nil
	}
	if g.cfg.DevAuth {
		return nil, false, protocol.Errorf(protocol.CodeUnauthenticated, "Authorization: Bearer <API key or session token> required, or (development auth) %s", protocol.HeaderUser)
	}
	return nil, false, protocol.Errorf(protocol.CodeUnauthenticated, "Authorization: Bearer <API key or session token> required")
}

// RegisterAPI serves the HTTP API on mux: POST /v1/rpc/{op}, the
// resource URLs, the HTTP-only endpoints, the files, OPTIONS (CORS
// preflights, cors.go) on all of them, and a JSON 404/405 for any other
// /v1/ path.
func (g *Gateway) RegisterAPI(mux *http.ServeMux) {
	api := apiRoutes{}
	handle := func(pattern string, h http.HandlerFunc) {
		api[pattern] = true
		mux.HandleFunc(pattern, g.withCORS(h))
	}
	handle("POST "+protocol.PathRPC, g.serveRPC)
	for _, op := range protocol.Ops() {
		for _, f := range op.HTTP {
			handle(f.Method+" "+f.Path, g.serveResource(op, f))
		}
	}
	handle("POST "+protocol.PathSendToUser, g.serveSendToUser)
	handle("PUT "+protocol.PathUserPut, g.serveUserPut)
	handle("POST "+protocol.PathTokens, g.serveTokens)
	handle("GET "+protocol.PathOpenAPI, g.serveOpenAPI)
	handle("GET "+protocol.PathExport, g.serveExport)
	handle("POST "+protocol.PathImport, g.serveImport)
	handle("POST "+protocol.PathFiles, g.ServeUpload)
	handle("GET "+protocol.PathFile, g.ServeFile)
	mux.HandleFunc("OPTIONS /v1/", func(w http.ResponseWriter, r *http.Request) {
		rs := routesOf(mux, r)
		if methods, ok := api.methods(rs); ok && len(methods) > 0 {
			g.serveOptions(w, r, methods)
			return
		}
		g.notRouted(w, r, rs, api)
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) { g.notRouted(w, r, routesOf(mux, r), api) })
}

// notRouted answers a /v1/ request no route took: 405 with Allow when the
// path has routes for other methods (rs), else 404. A path of the API,
// or of nothing, answers an allowed page with CORS headers, so that it
// reads the error.
func (g *Gateway) notRouted(w http.ResponseWriter, r *http.Request, rs []route, api apiRoutes) {
	if _, ok := api.methods(rs); ok {
		g.corsHeaders(w.Header(), r)
	}
	var allow []string
	for _, rt := range rs {
		if rt.method != r.Method {
			allow = append(allow, rt.method)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeHTTPError(w, http.StatusMethodNotAllowed, protocol.Errorf(protocol.CodeBadRequest, "%s is not allowed here: use %s", r.Method, strings.Join(allow, ", ")))
		return
	}
	writeHTTPError(w, 0, protocol.Errorf(protocol.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
}

// begin authenticates an API request, takes one of the node's API slots
// and reads its body (at most MaxFrameBytes). On failure it has answered
// and returns ok false; end must be called otherwise.
func (g *Gateway) begin(w http.ResponseWriter, r *http.Request) (o *apiRequest, apiKey bool, body []byte, ok bool) {
	o, apiKey, ok = g.admitAPI(w, r)
	if !ok {
		return nil, false, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(g.cfg.Limits.MaxFrameBytes)))
	if err != nil {
		<-g.apiSlots
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeHTTPError(w, 0, protocol.Errorf(protocol.CodeTooLarge, "the body is over %d bytes", g.cfg.Limits.MaxFrameBytes))
		} else {
			writeHTTPError(w, 0, protocol.Errorf(protocol.CodeBadRequest, "reading the body failed"))
		}
		return nil, false, nil, false
	}
	return o, apiKey, body, true
}

// admitAPI authenticates an API request and takes one of the node's API
// slots, leaving the body unread (a streamed body is the handler's to
// read). On failure it has answered and returns ok false; end must be
// called otherwise.
func (g *Gateway) admitAPI(w http.ResponseWriter, r *http.Request) (o *apiRequest, apiKey bool, ok bool) {
	c, key, perr := g.apiCaller(r)
	if perr == nil && !key {
		perr = g.apiRates.take(c.User, time.Now())
	}
	if perr != nil {
		writeHTTPError(w, 0, perr)
		return nil, false, false
	}
	apiKey = key && c.User == "" // the key itself, as a global admin
	select {
	case g.apiSlots <- struct{}{}:
	default:
		e := protocol.Errorf(protocol.CodeUnavailable, "the node is at its %d concurrent API requests", cap(g.apiSlots))
		e.RetryAfterMS = 1000
		writeHTTPError(w, 0, e)
		return nil, false, false
	}
	return &apiRequest{c: c}, apiKey, true
}

func (g *Gateway) end() { <-g.apiSlots }

// await runs f and waits for the reply it gives done, or for ctx (the
// client went away; nobody reads the answer).
func await(ctx context.Context, f func(done answer)) *clusterpb.Reply {
	ch := make(chan *clusterpb.Reply, 1)
	f(func(rep *clusterpb.Reply) { ch <- rep })
	select {
	case rep := <-ch:
		return rep
	case <-ctx.Done():
		return errorReply(protocol.Errorf(protocol.CodeUnavailable, "request abandoned"))
	}
}

// run dispatches op for o and waits for its reply, counting it in the
// request metrics as a WebSocket request is.
func (g *Gateway) run(ctx context.Context, o origin, op protocol.Op, args []byte) *clusterpb.Reply {
	start := time.Now()
	rep := await(ctx, func(done answer) { g.dispatch(o, op, args, done) })
	g.cfg.Metrics.observe(op.Name, rep, start)
	return rep
}

// serveRPC serves POST /v1/rpc/{op}: the body is the op's args.
func (g *Gateway) serveRPC(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("op")
	op, known := protocol.LookupOp(name)
	o, _, body, ok := g.begin(w, r)
	if !ok {
		return
	}
	defer g.end()
	switch {
	case !known:
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeNotFound, "no op %q", name))
		return
	case op.Session:
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeBadRequest, "%s needs a live session: use the WebSocket (/v1/ws)", name))
		return
	}
	args, perr := g.httpArgs(r, op, body, nil, false)
	if perr != nil {
		writeHTTPError(w, 0, perr)
		return
	}
	g.writeReply(w, g.run(r.Context(), o, op, args), http.StatusOK)
}

// serveResource serves one resource URL of op.
func (g *Gateway) serveResource(op protocol.Op, f protocol.HTTPForm) http.HandlerFunc {
	vars := protocol.PathVars(f.Path)
	return func(w http.ResponseWriter, r *http.Request) {
		o, _, body, ok := g.begin(w, r)
		if !ok {
			return
		}
		defer g.end()
		path := make(map[string]string, len(vars))
		for _, v := range vars {
			arg := v
			if a, ok := f.Params[v]; ok {
				arg = a
			}
			path[arg] = r.PathValue(v)
		}
		args, perr := g.httpArgs(r, op, body, path, true)
		if perr != nil {
			writeHTTPError(w, 0, perr)
			return
		}
		rep := g.run(r.Context(), o, op, args)
		status := f.Status
		switch {
		case rep.Error != nil:
		case op.Name == protocol.OpMessageSend:
			var res protocol.MessageResult
			if json.Unmarshal(rep.Result, &res) == nil && res.Duplicate {
				status = http.StatusOK // a resend of an existing client_id
			}
		case op.Name == protocol.OpUsersGet:
			rep = oneUser(rep, path["ids"])
		}
		g.writeReply(w, rep, status)
	}
}

// httpArgs builds an op's args from a request (see protocol.Op.HTTPArgs);
// resource URLs take args from the query string too. A message.send
// without client_id takes the Idempotency-Key header, or a fresh id (that
// send is then not idempotent).
func (g *Gateway) httpArgs(r *http.Request, op protocol.Op, body []byte, path map[string]string, query bool) (json.RawMessage, *protocol.Error) {
	q := r.URL.Query()
	if !query && len(q) > 0 {
		for k := range q {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "unknown query parameter %q: POST /v1/rpc/%s takes its args in the body", k, op.Name)
		}
	}
	if !query {
		q = nil
	}
	if op.Name == protocol.OpMessageSend {
		if key := r.Header.Get(protocol.HeaderIdempotencyKey); key != "" {
			path = withArg(path, "client_id", key)
		}
	}
	args, v, perr := op.HTTPArgs(body, q, path)
	if perr != nil {
		return nil, perr
	}
	if op.Name == protocol.OpMessageSend && v.(*protocol.SendArgs).ClientID == "" {
		args, _, perr = op.HTTPArgs(body, q, withArg(path, "client_id", "http-"+randomID()+randomID()))
	}
	return args, perr
}

func withArg(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

// oneUser answers GET /v1/users/{id}: the users.get result with user set
// to the one user, or not_found.
func oneUser(rep *clusterpb.Reply, id string) *clusterpb.Reply {
	var res protocol.UsersResult
	if bad := decodeResult(rep, &res); bad != nil {
		return bad
	}
	if len(res.Users) == 0 {
		return errorReply(protocol.Errorf(protocol.CodeNotFound, "no user %q", id))
	}
	res.User = &res.Users[0]
	b, _ := json.Marshal(res)
	return resultReply(b)
}

// writeReply answers with rep: its result with status, or its error.
func (g *Gateway) writeReply(w http.ResponseWriter, rep *clusterpb.Reply, status int) {
	if rep.Error != nil {
		writeHTTPError(w, 0, replyError(rep))
		return
	}
	writeJSON(w, status, rep.Result)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
