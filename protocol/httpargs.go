package protocol

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"unicode/utf8"
)

// HTTPArgs builds an op's args from the parts of an HTTP request: the
// body (a JSON object, or nothing), the query string and the path
// variables (by arg name). No arg may come from two parts, but for a path
// arg the body repeats with the same value. The result is checked like a
// WebSocket request's args (Decode): merged args and their decoded value.
func (o Op) HTTPArgs(body []byte, query url.Values, path map[string]string) (json.RawMessage, any, *Error) {
	return httpArgs(o.Name, o.shape, o.Args, body, query, path)
}

// Decode checks an endpoint's JSON body strictly, as Op.HTTPArgs does,
// with the path variables that fill its fields.
func (e Endpoint) Decode(body []byte, path map[string]string) (any, *Error) {
	_, v, perr := httpArgs(e.Method+" "+e.Path, e.shape, e.Body, body, nil, path)
	return v, perr
}

func httpArgs(name string, sh *shape, t reflect.Type, body []byte, query url.Values, path map[string]string) (json.RawMessage, any, *Error) {
	type kv struct {
		key string
		val []byte
	}
	var args []kv
	from := map[string]string{}
	if len(bytes.TrimSpace(body)) > 0 {
		if !json.Valid(body) {
			return nil, nil, Errorf(CodeBadRequest, "the body is not JSON: %s", jsonProblem(json.Unmarshal(body, &struct{}{})))
		}
		// Strict, like a WebSocket frame (DecodeRequest): the body is the
		// args, one level above a frame's.
		if perr := CheckJSON(body, MaxJSONDepth+1); perr != nil {
			return nil, nil, Errorf(CodeBadRequest, "the body is refused: %s", perr.Message)
		}
		var dup *Error
		if perr := scanObject(body, func(k []byte, val []byte) *Error {
			key := string(k)
			if _, ok := from[key]; ok {
				dup = Errorf(CodeBadRequest, "%s is given twice in the body", key)
				return dup
			}
			from[key] = "body"
			args = append(args, kv{key, val})
			return nil
		}); perr != nil {
			if dup != nil {
				return nil, nil, dup
			}
			return nil, nil, Errorf(CodeBadRequest, "the body must be a JSON object")
		}
	}
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if sh.fields[k] == nil {
			return nil, nil, Errorf(CodeBadRequest, "unknown query parameter %q: %s takes %s", k, name, knownList(sh.names, ""))
		}
		if w, ok := from[k]; ok {
			return nil, nil, Errorf(CodeBadRequest, "%s is given in the query string and the %s", k, w)
		}
		vs := query[k]
		if len(vs) != 1 {
			return nil, nil, Errorf(CodeBadRequest, "query parameter %s is given %d times", k, len(vs))
		}
		if !utf8.ValidString(vs[0]) {
			return nil, nil, Errorf(CodeBadRequest, "query parameter %s is not valid UTF-8", k)
		}
		v, perr := queryValue(sh, k, vs[0])
		if perr != nil {
			return nil, nil, perr
		}
		from[k] = "query string"
		args = append(args, kv{k, v})
	}
	names := make([]string, 0, len(path))
	for k := range path {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		v := pathValue(sh, k, path[k])
		switch from[k] {
		case "":
			args = append(args, kv{k, v})
		case "body":
			i := slices.IndexFunc(args, func(a kv) bool { return a.key == k })
			if !sameJSON(args[i].val, v) {
				return nil, nil, Errorf(CodeBadRequest, "%s is given by the path or a header; the body says otherwise", k)
			}
		default:
			return nil, nil, Errorf(CodeBadRequest, "%s is given by the path and the %s", k, from[k])
		}
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, a := range args {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(AppendString(nil, a.key))
		b.WriteByte(':')
		b.Write(a.val)
	}
	b.WriteByte('}')
	merged := json.RawMessage(b.Bytes())
	v, perr := decodeStrict(name, sh, t, merged)
	if perr != nil {
		return nil, nil, perr
	}
	return merged, v, nil
}

// sameJSON reports whether two JSON values are equal once compacted.
func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
