package openapi

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/switchboard-chat/switchboard/protocol"
)

func load(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(Document())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return doc
}

// The document is valid OpenAPI 3.1 (kin-openapi's validator).
func TestDocumentIsValidOpenAPI31(t *testing.T) {
	doc := load(t)
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
}

// Every op that needs no session has its rpc path and its resource URLs,
// every endpoint its path, each with a body schema where it takes one and
// a result schema; session-bound ops are absent.
func TestDocumentCoversTheTable(t *testing.T) {
	doc := load(t)
	op := func(path, method string) *openapi3.Operation {
		item := doc.Paths.Find(path)
		if item == nil {
			return nil
		}
		return item.GetOperation(method)
	}
	ok := func(o *openapi3.Operation, status int, ctype ...string) {
		t.Helper()
		ct := "application/json"
		if len(ctype) > 0 {
			ct = ctype[0]
		}
		r := o.Responses.Status(status)
		if r == nil || r.Value.Content.Get(ct) == nil || r.Value.Content.Get(ct).Schema == nil {
			t.Errorf("%s: no %d schema", o.OperationID, status)
		}
		if o.Responses.Default() == nil {
			t.Errorf("%s: no error response", o.OperationID)
		}
	}
	for _, o := range protocol.Ops() {
		rpc := op("/v1/rpc/"+o.Name, "POST")
		if o.Session {
			if rpc != nil {
				t.Errorf("session-bound %s is in the document", o.Name)
			}
			continue
		}
		if rpc == nil || rpc.RequestBody == nil {
			t.Errorf("%s: no rpc operation with a body", o.Name)
			continue
		}
		ok(rpc, 200)
		for _, f := range o.HTTP {
			r := op(f.Path, f.Method)
			if r == nil {
				t.Errorf("%s %s (%s) is not in the document", f.Method, f.Path, o.Name)
				continue
			}
			ok(r, f.Status)
		}
	}
	for _, e := range protocol.Endpoints() {
		r := op(e.Path, e.Method)
		if r == nil {
			t.Errorf("%s %s is not in the document", e.Method, e.Path)
			continue
		}
		if e.NDJSONResult {
			ok(r, e.Status, protocol.ContentTypeNDJSON)
		} else {
			ok(r, e.Status)
		}
		if (e.Body != nil || e.NDJSONBody) != (r.RequestBody != nil) {
			t.Errorf("%s %s: body %v in the table, %v in the document", e.Method, e.Path, e.Body, r.RequestBody)
		}
		for _, q := range e.Query {
			if r.Parameters.GetByInAndName("query", q.Name) == nil {
				t.Errorf("%s %s: no query parameter %s", e.Method, e.Path, q.Name)
			}
		}
	}
}

// Each op's args schema has exactly the args the server takes for that op
// and refuses others, and its rpc body is that schema: no op's document
// lists an argument the server would refuse for it.
func TestArgsSchemasAreExactPerOp(t *testing.T) {
	doc := load(t)
	for _, o := range protocol.Ops() {
		name := o.Args.Name()
		ref := doc.Components.Schemas[name]
		if ref == nil {
			t.Errorf("%s: no schema %s", o.Name, name)
			continue
		}
		var props []string
		for p := range ref.Value.Properties {
			props = append(props, p)
		}
		slices.Sort(props)
		if want := o.ArgNames(); !slices.Equal(props, want) {
			t.Errorf("%s: schema %s has %v, the server takes %v", o.Name, name, props, want)
		}
		if ap := ref.Value.AdditionalProperties.Has; ap == nil || *ap {
			t.Errorf("%s: schema %s does not refuse other properties", o.Name, name)
		}
		if o.Session {
			continue
		}
		body := doc.Paths.Find("/v1/rpc/" + o.Name).Post.RequestBody.Value.Content.Get("application/json").Schema
		if o.Name != protocol.OpMessageSend && body.Ref != "#/components/schemas/"+name {
			t.Errorf("%s: the rpc body is %q, want the %s schema", o.Name, body.Ref, name)
		}
	}
	for op, absent := range map[string]string{
		protocol.OpChannelWatch: "token", protocol.OpMemberKick: "duration_min",
		protocol.OpMemberUnmute: "reason", protocol.OpMemberUnban: "duration_min",
	} {
		o, _ := protocol.LookupOp(op)
		if doc.Components.Schemas[o.Args.Name()].Value.Properties[absent] != nil {
			t.Errorf("%s: the document lists %s", op, absent)
		}
	}
}

// Values the server writes validate against their schemas, and strict
// bodies refuse unknown properties, as the server does.
func TestSchemasMatchValues(t *testing.T) {
	doc := load(t)
	schema := func(name string) *openapi3.Schema {
		s := doc.Components.Schemas[name]
		if s == nil {
			t.Fatalf("no schema %s", name)
		}
		return s.Value
	}
	check := func(name string, v any, valid bool) {
		t.Helper()
		b, _ := json.Marshal(v)
		var x any
		_ = json.Unmarshal(b, &x)
		err := schema(name).VisitJSON(x, openapi3.EnableJSONSchema2020())
		if (err == nil) != valid {
			t.Errorf("%s %s: valid=%v, err %v", name, b, valid, err)
		}
	}
	now := protocol.At(time.Now())
	msg := &protocol.Message{ID: "1-ab", Channel: "c", Segment: 1, User: "u", Type: "text", Text: "hi", CreatedAt: now,
		Reactions: map[string]int64{"+1": 2}, Data: json.RawMessage(`{"k":1}`)}
	check("MessageResult", protocol.MessageResult{Message: msg}, true)
	check("ChannelResult", protocol.ChannelResult{Channel: &protocol.Channel{ID: "c", Type: "standard", Tags: []string{}, LastMessage: msg, CreatedAt: now}}, true)
	check("UsersResult", protocol.UsersResult{Users: []protocol.User{{ID: "u", Status: "online"}}}, true)
	check("ErrorBody", protocol.ErrorBody{Error: protocol.Errorf(protocol.CodeMuted, "muted")}, true)
	check("ErrorBody", map[string]any{"error": map[string]any{"code": "made_up", "message": "x"}}, false)
	check("SendArgs", map[string]any{"channel": "c", "client_id": "x", "text": "hi"}, true)
	check("SendArgs", map[string]any{"channel": "c", "client_id": "x", "txt": "hi"}, false)
	check("TokenArgs", map[string]any{"user": "u", "ttl_s": 60}, true)
	check("TokenArgs", map[string]any{"user": "u", "channel": "c", "single_use": true}, true)
	check("TokenArgs", map[string]any{"user": "u", "channel": "c", "single_use": "yes"}, false)
	if !strings.Contains(string(Document()), `"/v1/channels/{id}/messages/{message_id}/reactions/{name}"`) {
		t.Error("the reaction URL is not spelled as the contract spells it")
	}
}
