package gateway

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The endpoints only HTTP has (protocol.Endpoints).

// endpoint returns the table's endpoint of method and path.
func endpoint(method, path string) protocol.Endpoint {
	for _, e := range protocol.Endpoints() {
		if e.Method == method && e.Path == path {
			return e
		}
	}
	panic("gateway: no endpoint " + method + " " + path)
}

// serveSendToUser serves POST /v1/users/{id}/messages: open the caller's
// distinct conversation with the user (creating it, or bringing back
// either side that had left) and send into it.
func (g *Gateway) serveSendToUser(w http.ResponseWriter, r *http.Request) {
	o, _, body, ok := g.begin(w, r)
	if !ok {
		return
	}
	defer g.end()
	to := r.PathValue("id")
	if perr := g.checkID("user", to); perr != nil {
		writeHTTPError(w, 0, perr)
		return
	}
	me := o.caller().User
	if me == "" {
		writeHTTPError(w, 0, protocol.Errorf(protocol.CodeBadRequest, "sending acts as a user: name one with the %s header", protocol.HeaderUser))
		return
	}
	var fixed map[string]string
	if key := r.Header.Get(protocol.HeaderIdempotencyKey); key != "" {
		fixed = map[string]string{"client_id": key}
	}
	v, perr := endpoint(http.MethodPost, protocol.PathSendToUser).Decode(body, fixed)
	if perr != nil {
		writeHTTPError(w, 0, perr)
		return
	}
	a := v.(*protocol.SendToUserArgs)
	if a.ClientID == "" {
		a.ClientID = "http-" + randomID() + randomID()
	}
	openArgs, _ := json.Marshal(channel.OpenArgs{Users: []string{to}})
	ch := channel.DistinctID([]string{me, to})
	open := &clusterpb.Request{Kind: kindChannel, Target: ch, Op: channel.OpOpen, Args: openArgs}
	rep := await(r.Context(), func(done answer) { g.whenUsersExist(o, []string{to}, open, done) })
	var opened protocol.ChannelCreateResult
	if bad := decodeResult(rep, &opened); bad != nil {
		g.writeReply(w, bad, 0)
		return
	}
	sendOp, _ := protocol.LookupOp(protocol.OpMessageSend)
	sendArgs, _ := json.Marshal(a.In(ch))
	rep = g.run(r.Context(), o, sendOp, sendArgs)
	var sent protocol.MessageResult
	if bad := decodeResult(rep, &sent); bad != nil {
		g.writeReply(w, bad, 0)
		return
	}
	out, _ := json.Marshal(protocol.SendToUserResult{Message: sent.Message, Channel: opened.Channel, Created: opened.Created, Duplicate: sent.Duplicate})
	writeJSON(w, http.StatusCreated, out)
}

// serveUserPut serves PUT /v1/users/{id} (API key only): create the user
// or update the fields given.
func (g *Gateway) serveUserPut(w http.ResponseWriter, r *http.Request) {
	o, apiKey, body, ok := g.begin(w, r)
	if !ok {
		return
	}
	defer g.end()
	if !apiKey {
		writeHTTPError(w, 0, apiKeyOnly())
		return
	}
	id := r.PathValue("id")
	if perr := g.checkID("user", id); perr != nil {
		writeHTTPError(w, 0, perr)
		return
	}
	if _, perr := endpoint(http.MethodPut, protocol.PathUserPut).Decode(body, nil); perr != nil {
		writeHTTPError(w, 0, perr)
		return
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	// The user's own user.update, as the user: it creates the profile
	// of a user never seen.
	req := &clusterpb.Request{Kind: kindUser, Target: id, Op: protocol.OpUserUpdate, Args: body, Caller: &clusterpb.Caller{User: id}}
	g.writeReply(w, await(r.Context(), func(done answer) { g.call(o, req, done) }), http.StatusOK)
}

func apiKeyOnly() *protocol.Error {
	return protocol.Errorf(protocol.CodeForbidden, "only a server API key may do this (without %s)", protocol.HeaderUser)
}

// Token lifetimes: the defaults of switchboard token, and a bound.
const (
	sessionTokenTTL = time.Hour
	joinTokenTTL    = 5 * time.Minute
	maxTokenTTL     = 365 * 24 * time.Hour
)

// serveTokens serves POST /v1/tokens (API key only): a session token, or
// with channel a join token (single-use with single_use), signed with the
// node's auth secret.
func (g *Gateway) serveTokens(w http.ResponseWriter, r *http.Request) {
	_, apiKey, body, ok := g.begin(w, r)
	if !ok {
		return
	}
	defer g.end()
	if !apiKey {
		writeHTTPError(w, 0, apiKeyOnly())
		return
	}
	v, perr := endpoint(http.MethodPost, protocol.PathTokens).Decode(body, nil)
	if perr != nil {
		writeHTTPError(w, 0, perr)
		return
	}
	a := v.(*protocol.TokenArgs)
	tok, exp, perr := g.mint(a)
	if perr != nil {
		writeHTTPError(w, 0, perr)
		return
	}
	out, _ := json.Marshal(protocol.TokenResult{Token: tok, ExpiresAt: protocol.At(exp)})
	writeJSON(w, http.StatusCreated, out)
}

// mint checks a token request as switchboard token does and signs it.
func (g *Gateway) mint(a *protocol.TokenArgs) (string, time.Time, *protocol.Error) {
	bad := func(format string, args ...any) (string, time.Time, *protocol.Error) {
		return "", time.Time{}, protocol.Errorf(protocol.CodeBadRequest, format, args...)
	}
	if g.cfg.TokenSigner == nil {
		return "", time.Time{}, protocol.Errorf(protocol.CodeInvalidState, "this node holds no key to sign tokens with (it needs --auth-secret)")
	}
	if perr := g.checkID("user", a.User); perr != nil {
		return "", time.Time{}, perr
	}
	join := a.Channel != ""
	ttl := sessionTokenTTL
	if join {
		ttl = joinTokenTTL
		if perr := g.checkID("channel", a.Channel); perr != nil {
			return "", time.Time{}, perr
		}
		if a.Name != "" || a.Admin {
			return bad("name and admin are claims of a session token, not of a join token (channel)")
		}
		if err := auth.CheckPerms(a.Perms); err != nil {
			return bad("perms: %s", err)
		}
	} else {
		if a.Perms != nil || a.SingleUse {
			return bad("perms and single_use belong to a join token: give channel too")
		}
		if len(a.Name) > g.cfg.Limits.MaxNameLen {
			return "", time.Time{}, protocol.Errorf(protocol.CodeTooLong, "name is %d bytes, the limit is %d", len(a.Name), g.cfg.Limits.MaxNameLen)
		}
	}
	if a.TTLS != nil {
		if *a.TTLS < 1 || time.Duration(*a.TTLS) > maxTokenTTL/time.Second {
			return bad("ttl_s must be between 1 and %d", int64(maxTokenTTL/time.Second))
		}
		ttl = time.Duration(*a.TTLS) * time.Second
	}
	// The token's exp is in whole seconds: so is expires_at.
	exp := time.Now().Add(ttl).Truncate(time.Second)
	var tok string
	var err error
	if join {
		perms := a.Perms
		if perms == nil {
			perms = []string{auth.PermRead, auth.PermWrite}
		}
		j := auth.Join{User: a.User, Channel: a.Channel, Perms: perms}
		if a.SingleUse {
			j.ID = auth.NewJoinID()
		}
		tok, err = g.cfg.TokenSigner.JoinTokenUntil(j, exp)
	} else {
		tok, err = g.cfg.TokenSigner.SessionTokenUntil(auth.Session{User: a.User, Name: a.Name, Admin: a.Admin}, exp)
	}
	if err != nil {
		return "", time.Time{}, protocol.Errorf(protocol.CodeInternal, "signing failed")
	}
	return tok, exp, nil
}

// serveOpenAPI serves GET /v1/openapi.json, no credential needed.
func (g *Gateway) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, g.openapi)
}
