package protocol

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// The table is whole and consistent: every op once, with types, a route,
// and resource forms whose path variables fill args the op has.
func TestOpTable(t *testing.T) {
	seen := map[string]bool{}
	routes := map[string]string{}
	for _, op := range Ops() {
		if seen[op.Name] {
			t.Errorf("op %s twice", op.Name)
		}
		seen[op.Name] = true
		if op.Args == nil || op.Result == nil || op.Args.Kind() != reflect.Struct || op.Result.Kind() != reflect.Struct {
			t.Errorf("op %s: args %v result %v must be struct types", op.Name, op.Args, op.Result)
		}
		switch op.Route {
		case RouteSession:
			if !op.Session {
				t.Errorf("op %s is answered by the session but not session-bound", op.Name)
			}
		case RouteUser, RouteChannel, RouteGateway:
		default:
			t.Errorf("op %s: route %q", op.Name, op.Route)
		}
		if (op.Route == RouteChannel) != op.HasArg("channel") && op.Name != OpChannelCreate {
			t.Errorf("op %s: routed to %s, has a channel arg = %v", op.Name, op.Route, op.HasArg("channel"))
		}
		if op.Session && len(op.HTTP) > 0 {
			t.Errorf("op %s needs a session but has resource URLs", op.Name)
		}
		if got, ok := LookupOp(op.Name); !ok || got.Name != op.Name {
			t.Errorf("LookupOp(%s) = %v %v", op.Name, got.Name, ok)
		}
		for _, f := range op.HTTP {
			key := f.Method + " " + f.Path
			if other, dup := routes[key]; dup {
				t.Errorf("%s is the URL of %s and %s", key, other, op.Name)
			}
			routes[key] = op.Name
			if f.Status < 200 || f.Status > 299 {
				t.Errorf("%s: status %d", key, f.Status)
			}
			for _, seg := range strings.Split(f.Path, "/") {
				if !strings.HasPrefix(seg, "{") {
					continue
				}
				v := strings.Trim(seg, "{}")
				arg := v
				if a, ok := f.Params[v]; ok {
					arg = a
				}
				if !op.HasArg(arg) {
					t.Errorf("%s: {%s} fills %s, which %s does not take", key, v, arg, op.Name)
				}
			}
		}
	}
	for _, name := range []string{OpConnect, OpLogout, OpMe, OpMessageSend, OpChannelUnmute, OpReadMark} {
		if !seen[name] {
			t.Errorf("op %s is missing", name)
		}
	}
	// The contract's 40, and the ones added since (ping).
	if len(seen) != 41 {
		t.Errorf("%d ops, want 41", len(seen))
	}
	if _, ok := LookupOp("nope"); ok {
		t.Error("LookupOp found an unknown op")
	}
}

// The resource URLs are exactly the contract's table (SERVER-API.md).
func TestResourceURLs(t *testing.T) {
	want := map[string]string{
		"GET /v1/channels":                                                OpChannelsList,
		"POST /v1/channels":                                               OpChannelCreate,
		"GET /v1/channels/{id}":                                           OpChannelGet,
		"PATCH /v1/channels/{id}":                                         OpChannelUpdate,
		"DELETE /v1/channels/{id}":                                        OpChannelDelete,
		"GET /v1/channels/{id}/messages":                                  OpMessagesHistory,
		"POST /v1/channels/{id}/messages":                                 OpMessageSend,
		"PATCH /v1/channels/{id}/messages/{message_id}":                   OpMessageEdit,
		"DELETE /v1/channels/{id}/messages/{message_id}":                  OpMessageDelete,
		"PUT /v1/channels/{id}/messages/{message_id}/reactions/{name}":    OpReactionAdd,
		"DELETE /v1/channels/{id}/messages/{message_id}/reactions/{name}": OpReactionRemove,
		"GET /v1/channels/{id}/members":                                   OpMembersList,
		"POST /v1/channels/{id}/members":                                  OpMembersAdd,
		"DELETE /v1/channels/{id}/members/{user}":                         OpMembersRemove,
		"GET /v1/users/{id}":                                              OpUsersGet,
	}
	got := map[string]string{}
	for _, op := range Ops() {
		for _, f := range op.HTTP {
			got[f.Method+" "+f.Path] = op.Name
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resource URLs\n got %v\nwant %v", got, want)
	}
}

func op(t *testing.T, name string) Op {
	t.Helper()
	o, ok := LookupOp(name)
	if !ok {
		t.Fatalf("no op %s", name)
	}
	return o
}

func TestStrictArgs(t *testing.T) {
	tests := []struct {
		op, args string
		bad      string // part of the error message; "" for success
	}{
		{OpMessageSend, `{"channel":"c","client_id":"x","text":"hi"}`, ""},
		{OpMessageSend, ` { "channel" : "c" , "text" : "a\"}b" } `, ""},
		{OpMessageSend, `{"channel":"c","data":{"any":{"nested":[1,{"thing":true}]}}}`, ""},
		{OpMessageSend, `{"channel":"c","txt":"hi"}`, `unknown argument "txt"`},
		{OpMessageSend, `{"Channel":"c"}`, `unknown argument "Channel"`},
		{OpMessageSend, `{"chan\u006eel":"c"}`, ""},
		{OpMessageSend, `{"channel":"c","text":5}`, "field text has the wrong type"},
		{OpReadMark, `{"channel":"c","message_id":"1-ab"}`, ""},
		{OpReadMark, `{"channel":"c","message":"1-ab"}`, `unknown argument "message"`},
		{OpMe, `{}`, ""},
		{OpMe, ``, ""},
		{OpMe, `{"x":1}`, "me takes no arguments"},
		{OpChannelCreate, `{"type":"live","attached_to":{"stream_id":"s"}}`, ""},
		{OpChannelCreate, `{"type":"live","attached_to":{"stream":"s"}}`, `unknown argument "attached_to.stream"`},
		{OpChannelUpdate, `{"channel":"c","rate_limit":{"count":1,"window_ms":5,"burst":2}}`, `unknown argument "rate_limit.burst"`},
		{OpChannelUpdate, `{"channel":"c","rate_limit":null}`, ""},
		{OpUsersGet, `[]`, "args must be an object"},
		{OpUsersGet, `{"ids":"alice"}`, "field ids has the wrong type"},
		// Ops that once shared an args type take only their own args.
		{OpChannelJoin, `{"token":"t","since_seq":3}`, ""},
		{OpChannelWatch, `{"channel":"c","since_seq":3}`, ""},
		{OpChannelWatch, `{"channel":"c","token":"t"}`, `unknown argument "token": channel.watch takes channel, since_seq`},
		{OpMemberMute, `{"channel":"c","user":"u","duration_min":5,"reason":"r"}`, ""},
		{OpMemberBan, `{"channel":"c","user":"u","duration_min":0,"reason":"r"}`, ""},
		{OpMemberUnmute, `{"channel":"c","user":"u"}`, ""},
		{OpMemberUnmute, `{"channel":"c","user":"u","reason":"r"}`, `unknown argument "reason": member.unmute takes channel, user`},
		{OpMemberUnban, `{"channel":"c","user":"u","duration_min":5}`, `unknown argument "duration_min": member.unban takes channel, user`},
		{OpMemberKick, `{"channel":"c","user":"u","reason":"r"}`, ""},
		{OpMemberKick, `{"channel":"c","user":"u","duration_min":5}`, `unknown argument "duration_min": member.kick takes channel, reason, user`},
	}
	for _, tt := range tests {
		v, perr := op(t, tt.op).Decode(json.RawMessage(tt.args))
		switch {
		case tt.bad == "" && perr != nil:
			t.Errorf("%s %s: %v", tt.op, tt.args, perr)
		case tt.bad == "" && reflect.TypeOf(v).Elem() != op(t, tt.op).Args:
			t.Errorf("%s decoded into %T", tt.op, v)
		case tt.bad != "" && (perr == nil || perr.Code != CodeBadRequest || !strings.Contains(perr.Message, tt.bad)):
			t.Errorf("%s %s: got %v, want bad_request saying %q", tt.op, tt.args, perr, tt.bad)
		}
	}
	v, _ := op(t, OpMessageSend).Decode(json.RawMessage(`{"channel":"general","text":"x"}`))
	if ch := op(t, OpMessageSend).StringArg(v, "channel"); ch != "general" {
		t.Errorf("channel arg %q", ch)
	}
}

func TestHTTPArgs(t *testing.T) {
	hist := op(t, OpMessagesHistory)
	args, v, perr := hist.HTTPArgs(nil, url.Values{"limit": {"10"}, "before": {"40"}, "top_level": {"true"}, "search": {"a b"}}, map[string]string{"channel": "general"})
	if perr != nil {
		t.Fatal(perr)
	}
	a := v.(*HistoryArgs)
	if a.Channel != "general" || *a.Limit != 10 || *a.Before != 40 || !a.TopLevel || a.Search != "a b" {
		t.Fatalf("history args %s → %+v", args, a)
	}
	send := op(t, OpMessageSend)
	_, v, perr = send.HTTPArgs([]byte(`{"text":"hi","channel":"general"}`), nil, map[string]string{"channel": "general", "client_id": "k"})
	if perr != nil || v.(*SendArgs).ClientID != "k" || v.(*SendArgs).Channel != "general" {
		t.Fatalf("send args %+v %v", v, perr)
	}
	rm := op(t, OpMembersRemove)
	if _, v, perr := rm.HTTPArgs(nil, nil, map[string]string{"channel": "c", "users": "bob"}); perr != nil || !reflect.DeepEqual(v.(*MembersArgs).Users, []string{"bob"}) {
		t.Fatalf("members.remove args %+v %v", v, perr)
	}
	bad := []struct {
		op    Op
		body  string
		query url.Values
		path  map[string]string
		say   string
	}{
		{send, `{"text":`, nil, nil, "the body is not JSON"},
		{send, `[1]`, nil, nil, "the body must be a JSON object"},
		{send, `"text"`, nil, nil, "the body must be a JSON object"},
		{send, `{"text":"a","text":"b"}`, nil, nil, "text is given twice"},
		{send, `{"text":"a","channel":"other"}`, nil, map[string]string{"channel": "general"}, "the body says otherwise"},
		{send, `{"text":"a","colour":"red"}`, nil, nil, `unknown argument "colour"`},
		{send, `{"text":["a"]}`, nil, nil, "field text has the wrong type"},
		{hist, ``, url.Values{"limit": {"ten"}}, nil, "limit must be an integer"},
		{hist, ``, url.Values{"before": {"-1"}}, nil, "before must be a non-negative integer"},
		{hist, ``, url.Values{"top_level": {"maybe"}}, nil, "top_level must be true or false"},
		{hist, ``, url.Values{"limit": {"1", "2"}}, nil, "limit is given 2 times"},
		{hist, ``, url.Values{"page": {"2"}}, nil, `unknown query parameter "page"`},
		{hist, `{"limit":5}`, url.Values{"limit": {"5"}}, nil, "limit is given in the query string and the body"},
		{op(t, OpChannelsQuery), ``, url.Values{"tags": {"a"}}, nil, "tags cannot be given in the query string"},
	}
	for _, b := range bad {
		_, _, perr := b.op.HTTPArgs([]byte(b.body), b.query, b.path)
		if perr == nil || perr.Code != CodeBadRequest || !strings.Contains(perr.Message, b.say) {
			t.Errorf("%s body %q query %v: got %v, want bad_request saying %q", b.op.Name, b.body, b.query, perr, b.say)
		}
	}
}

func TestHTTPStatus(t *testing.T) {
	want := map[Code]int{
		CodeBadRequest: 400, CodeTooLong: 400,
		CodeUnauthenticated: 401, CodeTokenInvalid: 401, CodeTokenExpired: 401,
		CodeForbidden: 403, CodeNotMember: 403, CodeBanned: 403, CodeMuted: 403, CodeChannelMuted: 403,
		CodeNotFound:      404,
		CodeAlreadyMember: 409, CodeInvalidState: 409,
		CodeTooLarge:    413,
		CodeRateLimited: 429,
		CodeUnavailable: 503,
		CodeInternal:    500,
	}
	for _, c := range Codes() {
		if got := HTTPStatus(c); got != want[c] {
			t.Errorf("%s → %d, want %d", c, got, want[c])
		}
	}
	if len(want) != len(Codes()) {
		t.Errorf("%d codes, %d statuses", len(Codes()), len(want))
	}
	if HTTPStatus("made_up") != http.StatusInternalServerError {
		t.Error("an unknown code is not 500")
	}
}

// SendToUserArgs is message.send's args without channel, field for field.
func TestSendToUserArgsMirrorSendArgs(t *testing.T) {
	to := shapeOf(reflect.TypeFor[SendToUserArgs]())
	send := op(t, OpMessageSend)
	for _, n := range send.ArgNames() {
		if n != "channel" && to.fields[n] == nil {
			t.Errorf("send to a user lacks %s", n)
		}
	}
	if len(to.names) != len(send.ArgNames())-1 {
		t.Errorf("send to a user takes %v; message.send %v", to.names, send.ArgNames())
	}
}
