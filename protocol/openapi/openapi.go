// Package openapi writes the OpenAPI 3.1 document of the server HTTP API
// from the protocol's table of ops (protocol.Ops, protocol.Endpoints):
// every path the server routes, with the JSON Schemas of every body and
// result derived by reflection from the Go types the server decodes and
// encodes, so the document cannot drift from the server.
package openapi

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Version is the document's info.version: the protocol's version.
const Version = "1"

type obj = map[string]any

// Document returns the OpenAPI 3.1 document as JSON.
func Document() []byte {
	g := &gen{schemas: obj{}}
	paths := obj{}
	add := func(path, method string, op obj) {
		item, _ := paths[path].(obj)
		if item == nil {
			item = obj{}
			paths[path] = item
		}
		item[strings.ToLower(method)] = op
	}
	for _, op := range protocol.Ops() {
		// Every op's args and result are components, for clients of the
		// WebSocket too.
		g.schema(op.Args)
		g.schema(op.Result)
		if op.Session {
			continue // not over HTTP
		}
		add("/v1/rpc/"+op.Name, http.MethodPost, g.rpc(op))
		for _, f := range op.HTTP {
			add(f.Path, f.Method, g.resource(op, f))
		}
	}
	for _, e := range protocol.Endpoints() {
		add(e.Path, e.Method, g.endpoint(e))
	}
	doc := obj{
		"openapi": "3.1.0",
		"info": obj{
			"title":   "Switchboard server API",
			"version": Version,
			"description": "The Switchboard chat cluster over HTTP, for backends and for clients that prefer HTTP to a WebSocket: " +
				"the same ops as the WebSocket protocol (POST /v1/rpc/{op} for every op that needs no live session, and resource URLs " +
				"for the common ones), the same objects and error codes. Authenticate with Authorization: Bearer and a server API key " +
				"(a global admin; with X-Switchboard-User, that user) or a session JWT (that user). Every error is " +
				"{error: {code, message, retry_after_ms?}}; an unknown field in a body is refused (400).",
		},
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"security":          []any{obj{"bearer": []any{}}},
		"paths":             paths,
		"components": obj{
			"securitySchemes": obj{
				"bearer": obj{"type": "http", "scheme": "bearer",
					"description": "A server API key (--api-key) or a session JWT (the token a client gives connect)."},
			},
			"parameters": obj{
				"user": obj{"name": protocol.HeaderUser, "in": "header", "required": false, "schema": obj{"type": "string"},
					"description": "With an API key: act as this user, with this user's rights (and not an admin's)."},
				"idempotencyKey": obj{"name": protocol.HeaderIdempotencyKey, "in": "header", "required": false, "schema": obj{"type": "string"},
					"description": "The send's client_id (when the body has none): the same key sends once."},
			},
			"responses": obj{
				"error": obj{"description": "An error: the WebSocket error code with its HTTP status.",
					"content": jsonContent(g.schema(reflect.TypeFor[protocol.ErrorBody]()))},
			},
			"schemas": g.schemas,
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("openapi: " + err.Error()) // only plain values above
	}
	return b
}

type gen struct {
	schemas obj
}

func jsonContent(schema any) obj {
	return obj{"application/json": obj{"schema": schema}}
}

// operation is what every operation has: its id, summary, responses.
func (g *gen) operation(id, summary string, status int, result reflect.Type) obj {
	return obj{
		"operationId": id,
		"summary":     summary,
		"parameters":  []any{obj{"$ref": "#/components/parameters/user"}},
		"responses": obj{
			strconv.Itoa(status): obj{"description": http.StatusText(status), "content": jsonContent(g.schema(result))},
			"default":            obj{"$ref": "#/components/responses/error"},
		},
	}
}

func (g *gen) rpc(op protocol.Op) obj {
	o := g.operation("rpc."+op.Name, op.Summary, http.StatusOK, op.Result)
	o["tags"] = []any{"rpc"}
	o["requestBody"] = obj{"required": false, "content": jsonContent(g.argsSchema(op, nil))}
	if op.Name == protocol.OpMessageSend {
		o["parameters"] = append(o["parameters"].([]any), obj{"$ref": "#/components/parameters/idempotencyKey"})
	}
	return o
}

func (g *gen) resource(op protocol.Op, f protocol.HTTPForm) obj {
	o := g.operation(op.Name, op.Summary, f.Status, op.Result)
	o["tags"] = []any{"resources"}
	params := o["parameters"].([]any)
	bound := map[string]bool{}
	for _, v := range protocol.PathVars(f.Path) {
		arg := v
		if a, ok := f.Params[v]; ok {
			arg = a
		}
		bound[arg] = true
		params = append(params, obj{"name": v, "in": "path", "required": true, "schema": obj{"type": "string"}, "description": "the op's " + arg})
	}
	if op.Name == protocol.OpMessageSend {
		params = append(params, obj{"$ref": "#/components/parameters/idempotencyKey"})
	}
	switch f.Method {
	case http.MethodGet, http.MethodDelete:
		props, _ := g.fields(op.Args)
		for _, name := range sortedKeys(props) {
			if bound[name] {
				continue
			}
			params = append(params, obj{"name": name, "in": "query", "required": false, "schema": props[name]})
		}
	default:
		o["requestBody"] = obj{"required": false, "content": jsonContent(g.argsSchema(op, bound))}
	}
	o["parameters"] = params
	if op.Name == protocol.OpMessageSend {
		rs := o["responses"].(obj)
		rs["200"] = obj{"description": "A resend of an existing client_id: the original message (duplicate: true)",
			"content": jsonContent(g.schema(op.Result))}
	}
	if op.Name == protocol.OpUsersGet {
		o["summary"] = "One user (404 when unknown)"
	}
	return o
}

func (g *gen) endpoint(e protocol.Endpoint) obj {
	var result any = obj{"type": "object", "description": "An OpenAPI 3.1 document"}
	if e.Result != nil {
		result = g.schema(e.Result)
	}
	content := jsonContent(result)
	if e.NDJSONResult {
		content = g.ndjsonContent()
	}
	id := strings.ToLower(e.Method) + strings.NewReplacer("/v1/", "", "/", ".", "{", "", "}", "").Replace(e.Path)
	o := obj{
		"operationId": id,
		"summary":     e.Summary,
		"tags":        []any{"http"},
		"responses": obj{
			strconv.Itoa(e.Status): obj{"description": http.StatusText(e.Status), "content": content},
			"default":              obj{"$ref": "#/components/responses/error"},
		},
	}
	params := []any{}
	if !e.APIKeyOnly && !e.NoAuth {
		params = append(params, obj{"$ref": "#/components/parameters/user"})
	}
	for _, v := range protocol.PathVars(e.Path) {
		params = append(params, obj{"name": v, "in": "path", "required": true, "schema": obj{"type": "string"}})
	}
	if e.Path == protocol.PathSendToUser {
		params = append(params, obj{"$ref": "#/components/parameters/idempotencyKey"})
	}
	for _, q := range e.Query {
		params = append(params, obj{"name": q.Name, "in": "query", "required": false, "schema": obj{"type": q.Type}, "description": q.Description})
	}
	o["parameters"] = params
	if e.NoAuth {
		o["security"] = []any{}
	}
	if e.APIKeyOnly {
		o["description"] = "API key only (without " + protocol.HeaderUser + ")."
	}
	if e.Body != nil {
		o["requestBody"] = obj{"required": false, "content": jsonContent(g.schema(e.Body))}
	}
	if e.NDJSONBody {
		o["requestBody"] = obj{"required": true, "content": g.ndjsonContent()}
	}
	return o
}

// ndjsonContent is NDJSON of export/import records: the schema is that of
// one line.
func (g *gen) ndjsonContent() obj {
	var one []any
	for _, t := range protocol.RecordTypes() {
		one = append(one, g.schema(t))
	}
	return obj{protocol.ContentTypeNDJSON: obj{"schema": obj{"oneOf": one,
		"description": "One record a line (NDJSON); each line is one of these, told apart by its kind."}}}
}

// argsSchema is the body schema of an op: its args, strict, less those
// the path binds (none for rpc: the component itself).
func (g *gen) argsSchema(op protocol.Op, bound map[string]bool) any {
	props, required := g.fields(op.Args)
	if len(bound) == 0 && op.Name != protocol.OpMessageSend {
		return g.schema(op.Args)
	}
	out := obj{}
	var req []any
	for name, s := range props {
		if !bound[name] {
			out[name] = s
		}
	}
	for _, r := range required {
		if !bound[r] && !op.HTTPOptional(r) {
			req = append(req, r)
		}
	}
	s := obj{"type": "object", "properties": out, "additionalProperties": false}
	if len(req) > 0 {
		s["required"] = req
	}
	return s
}

var (
	rawType  = reflect.TypeFor[json.RawMessage]()
	timeType = reflect.TypeFor[protocol.Time]()
	codeType = reflect.TypeFor[protocol.Code]()
)

// schema is the JSON Schema of values of t.
func (g *gen) schema(t reflect.Type) any {
	switch t {
	case rawType:
		// data, metadata, a resume's event frames: JSON objects, or null.
		return obj{"type": []any{"object", "null"}}
	case timeType:
		return obj{"type": []any{"string", "null"}, "format": "date-time"}
	case codeType:
		var codes []any
		for _, c := range protocol.Codes() {
			codes = append(codes, string(c))
		}
		return obj{"type": "string", "enum": codes}
	}
	switch t.Kind() {
	case reflect.Pointer:
		inner := g.schema(t.Elem())
		if m, ok := inner.(obj); ok {
			if ty, ok := m["type"].(string); ok {
				c := obj{}
				for k, v := range m {
					c[k] = v
				}
				c["type"] = []any{ty, "null"}
				return c
			}
		}
		return obj{"anyOf": []any{inner, obj{"type": "null"}}}
	case reflect.String:
		return obj{"type": "string"}
	case reflect.Bool:
		return obj{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return obj{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return obj{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return obj{"type": "number"}
	case reflect.Slice, reflect.Array:
		return obj{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return obj{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		name := t.Name()
		if name == "" {
			return g.structSchema(t)
		}
		if _, ok := g.schemas[name]; !ok {
			g.schemas[name] = obj{} // a placeholder against recursion (Channel ↔ Message)
			g.schemas[name] = g.structSchema(t)
		}
		return obj{"$ref": "#/components/schemas/" + name}
	}
	return obj{}
}

// isArgs reports whether the server decodes values of t strictly (an
// op's args, an endpoint's body): their schemas refuse other properties.
func isArgs(t reflect.Type) bool {
	for _, op := range protocol.Ops() {
		if op.Args == t {
			return true
		}
	}
	for _, e := range protocol.Endpoints() {
		if e.Body == t {
			return true
		}
	}
	return false
}

func (g *gen) structSchema(t reflect.Type) obj {
	props, required := g.fields(t)
	s := obj{"type": "object", "properties": props}
	if len(required) > 0 {
		req := make([]any, len(required))
		for i, r := range required {
			req[i] = r
		}
		s["required"] = req
	}
	if isArgs(t) {
		s["additionalProperties"] = false
	}
	return s
}

// fields returns the properties of struct t by wire name and those
// always present (no omitempty or omitzero), sorted.
func (g *gen) fields(t reflect.Type) (obj, []string) {
	props := obj{}
	var required []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = g.schema(f.Type)
			if !slices.Contains(strings.Split(opts, ","), "omitempty") && !slices.Contains(strings.Split(opts, ","), "omitzero") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	slices.Sort(required)
	return props, required
}

func sortedKeys(m obj) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
