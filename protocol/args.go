package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Strict args. An op's args must be an object whose every key is an arg of
// the op, spelled exactly (encoding/json alone would drop unknown keys and
// match names without regard to case), nested objects included; then each
// value must have its arg's type. Both are checked once, where a request
// enters the server (the gateway, over WebSocket and HTTP alike); the
// actors decode what the gateway let through.

// argKind is the JSON type of an arg.
type argKind int

const (
	kindAny argKind = iota // any JSON (data, metadata)
	kindString
	kindInt
	kindUint
	kindFloat
	kindBool
	kindList   // an array
	kindObject // a nested object with its own args
)

// shape is the args of a struct type: its fields by wire name.
type shape struct {
	fields map[string]*argField
	names  []string // sorted
}

type argField struct {
	kind   argKind
	elem   argKind // of a list
	index  []int   // reflect field index
	nested *shape  // of an object
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// shapeOf returns the shape of a struct type (or of a pointer to one).
func shapeOf(t reflect.Type) *shape {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	sh := &shape{fields: map[string]*argField{}}
	addFields(sh, t, nil)
	for n := range sh.fields {
		sh.names = append(sh.names, n)
	}
	slices.Sort(sh.names)
	return sh
}

func addFields(sh *shape, t reflect.Type, index []int) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		idx := append(slices.Clone(index), i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			addFields(sh, f.Type, idx) // embedded: its fields are promoted
			continue
		}
		if name == "" {
			name = f.Name
		}
		af := &argField{index: idx}
		af.kind, af.nested = kindOf(f.Type)
		if af.kind == kindList {
			af.elem, _ = kindOf(f.Type.Elem())
		}
		sh.fields[name] = af
	}
}

func kindOf(t reflect.Type) (argKind, *shape) {
	if t == rawMessageType {
		return kindAny, nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return kindString, nil
	case reflect.Bool:
		return kindBool, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return kindInt, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return kindUint, nil
	case reflect.Float32, reflect.Float64:
		return kindFloat, nil
	case reflect.Slice, reflect.Array:
		return kindList, nil
	case reflect.Struct:
		return kindObject, shapeOf(t)
	}
	return kindAny, nil
}

// ArgNames returns the op's args, sorted.
func (o Op) ArgNames() []string { return slices.Clone(o.shape.names) }

// HasArg reports whether the op takes an arg of that name.
func (o Op) HasArg(name string) bool { return o.shape.fields[name] != nil }

// CheckArgs refuses args that are not an object or that hold a key the op
// does not know, naming it (bad_request). It does not check types: Decode
// does both.
func (o Op) CheckArgs(args json.RawMessage) *Error {
	if len(bytes.TrimSpace(args)) == 0 {
		return nil
	}
	return checkKeys(o.Name, o.shape, args, "")
}

func checkKeys(op string, sh *shape, obj []byte, prefix string) *Error {
	return scanObject(obj, func(key []byte, val []byte) *Error {
		f := sh.fields[string(key)]
		if f == nil {
			return Errorf(CodeBadRequest, "unknown argument %q: %s takes %s", prefix+string(key), op, knownList(sh.names, prefix))
		}
		if f.nested != nil && len(val) > 0 && val[0] == '{' {
			return checkKeys(op, f.nested, val, prefix+string(key)+".")
		}
		return nil
	})
}

func knownList(names []string, prefix string) string {
	if len(names) == 0 {
		return "no arguments"
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return strings.Join(out, ", ")
}

// Decode checks args strictly (CheckArgs) and decodes them into a new
// value of the op's args type, returned as a pointer; a value of the
// wrong type is a bad_request naming its field.
func (o Op) Decode(args json.RawMessage) (any, *Error) {
	return decodeStrict(o.Name, o.shape, o.Args, args)
}

func decodeStrict(name string, sh *shape, t reflect.Type, args json.RawMessage) (any, *Error) {
	if len(bytes.TrimSpace(args)) > 0 {
		if perr := checkKeys(name, sh, args, ""); perr != nil {
			return nil, perr
		}
	}
	v := reflect.New(t)
	if perr := DecodeArgs(args, v.Interface()); perr != nil {
		return nil, perr
	}
	return v.Interface(), nil
}

// New returns a pointer to a new zero value of the op's args type.
func (o Op) New() any { return reflect.New(o.Args).Interface() }

// StringArg returns the string arg name of v, a value Decode returned ("" when
// the op has no such arg).
func (o Op) StringArg(v any, name string) string {
	f := o.shape.fields[name]
	if f == nil || f.kind != kindString {
		return ""
	}
	fv := reflect.ValueOf(v).Elem().FieldByIndex(f.index)
	if fv.Kind() == reflect.Pointer {
		if fv.IsNil() {
			return ""
		}
		fv = fv.Elem()
	}
	return fv.String()
}

// scanObject calls fn with each key of the JSON object obj (unescaped;
// valid only during the call) and the raw bytes of its value, in order.
// Anything but an object is a bad_request. It checks only what it needs
// to find keys and values: full syntax is encoding/json's to check.
func scanObject(obj []byte, fn func(key []byte, val []byte) *Error) *Error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return notObject()
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return notObject()
		}
		end, ok := skipString(obj, i)
		if !ok {
			return notObject()
		}
		rawKey := obj[i:end]
		key := rawKey[1 : len(rawKey)-1]
		if bytes.IndexByte(rawKey, '\\') >= 0 {
			var k string
			if json.Unmarshal(rawKey, &k) != nil {
				return notObject()
			}
			key = []byte(k)
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return notObject()
		}
		i = skipSpace(obj, i+1)
		vend, ok := skipValue(obj, i)
		if !ok {
			return notObject()
		}
		if perr := fn(key, obj[i:vend]); perr != nil {
			return perr
		}
		i = skipSpace(obj, vend)
		if i >= len(obj) {
			return notObject()
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return nil
		default:
			return notObject()
		}
	}
}

func notObject() *Error { return Errorf(CodeBadRequest, "args must be an object") }

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index after the value starting at b[i]: a string,
// or an object or array (brackets counted, strings skipped), or a scalar
// (up to the next delimiter).
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := skipString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[j])) {
		j++
	}
	return j, j > i
}

// queryValue turns one query-string value of arg name into JSON.
func queryValue(sh *shape, name, v string) (json.RawMessage, *Error) {
	f := sh.fields[name]
	wrong := func(what string) *Error {
		return Errorf(CodeBadRequest, "query parameter %s must be %s", name, what)
	}
	switch f.kind {
	case kindString:
		b, _ := json.Marshal(v)
		return b, nil
	case kindInt:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return nil, wrong("an integer")
		}
		return json.RawMessage(v), nil
	case kindUint:
		if _, err := strconv.ParseUint(v, 10, 64); err != nil {
			return nil, wrong("a non-negative integer")
		}
		return json.RawMessage(v), nil
	case kindBool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, wrong("true or false")
		}
		return json.RawMessage(strconv.FormatBool(b)), nil
	}
	return nil, Errorf(CodeBadRequest, "%s cannot be given in the query string; send it in the body", name)
}

// pathValue turns a path variable's value into JSON for arg name: a
// string, or a list of that one string.
func pathValue(sh *shape, name, v string) json.RawMessage {
	b, _ := json.Marshal(v)
	if f := sh.fields[name]; f != nil && f.kind == kindList {
		return append(append([]byte{'['}, b...), ']')
	}
	return b
}
