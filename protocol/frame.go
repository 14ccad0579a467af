package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Request is a client → server frame.
type Request struct {
	// ID is the request id exactly as the client sent it (a JSON number or
	// string); it is echoed back verbatim in the reply.
	ID   json.RawMessage `json:"id"`
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Event is a server → client frame without an id.
type Event struct {
	Event   string `json:"event"`
	Channel string `json:"channel,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Data    any    `json:"data"`
}

// maxIDLen bounds the id a client may choose.
const maxIDLen = 64

type rawRequest struct {
	ID   json.RawMessage `json:"id"`
	Op   json.RawMessage `json:"op"`
	Args json.RawMessage `json:"args"`
}

// DecodeRequest parses one frame. On failure it returns the frame's id when
// one could be read, so the caller can address the error reply. The whole
// frame must be strict JSON (CheckJSON), so no op ever sees invalid UTF-8,
// a lone surrogate, a number beyond float64 or data nested deeper than
// MaxJSONDepth.
//
// The returned ID and Args may alias frame.
func DecodeRequest(frame []byte) (Request, *Error) {
	if req, ok := decodeRequestFast(frame); ok {
		return req, nil
	}
	return decodeRequestSlow(frame)
}

// decodeRequestFast decodes the frames clients send, a strict JSON
// object of "id", "op" and "args" and nothing else, in one pass that
// checks it as CheckJSON does and builds nothing. Anything else (another
// key, however spelled; an escaped key or op; an invalid frame) it leaves
// to decodeRequestSlow (ok false), which decodes what encoding/json
// accepts and words every error. When ok, the result is the one
// decodeRequestSlow returns (FuzzDecodeRequest checks it).
func decodeRequestFast(frame []byte) (req Request, ok bool) {
	c := strictScanner{b: frame, max: frameDepth}
	c.skipSpace()
	if c.i >= len(c.b) || c.b[c.i] != '{' {
		return Request{}, false
	}
	c.i++
	c.depth = 1
	var id, op, args []byte
	for {
		c.skipSpace()
		if c.i >= len(c.b) || c.b[c.i] != '"' {
			return Request{}, false // '}' too: an empty object has no op
		}
		k := c.i
		if !c.str() {
			return Request{}, false
		}
		key := c.b[k+1 : c.i-1]
		c.skipSpace()
		if c.i >= len(c.b) || c.b[c.i] != ':' {
			return Request{}, false
		}
		c.i++
		c.skipSpace()
		v := c.i
		if !c.value() {
			return Request{}, false
		}
		switch string(key) {
		case "id":
			id = c.b[v:c.i]
		case "op":
			op = c.b[v:c.i]
		case "args":
			args = c.b[v:c.i]
		default:
			return Request{}, false
		}
		c.skipSpace()
		if c.i >= len(c.b) {
			return Request{}, false
		}
		if c.b[c.i] == '}' {
			c.i++
			break
		}
		if c.b[c.i] != ',' {
			return Request{}, false
		}
		c.i++
	}
	c.skipSpace()
	if c.i < len(c.b) {
		return Request{}, false
	}
	if len(op) < 3 || op[0] != '"' || bytes.IndexByte(op, '\\') >= 0 {
		return Request{}, false // absent, empty, not a string, or escaped
	}
	if i, known := opIndex[string(op[1:len(op)-1])]; known {
		req.Op = opTable[i].Name // the table's string: no copy
	} else {
		req.Op = string(op[1 : len(op)-1])
	}
	if len(id) > 0 && !bytes.Equal(id, []byte("null")) {
		// A string the scan passed is valid UTF-8 and decodes.
		if len(id) > maxIDLen || (id[0] != '"' && !validID(id)) {
			return Request{}, false
		}
		req.ID = id
	}
	if len(args) > 0 && !bytes.Equal(args, []byte("null")) {
		if args[0] != '{' {
			return Request{}, false
		}
		req.Args = args
	}
	return req, true
}

// decodeRequestSlow is DecodeRequest through encoding/json.
func decodeRequestSlow(frame []byte) (Request, *Error) {
	var raw rawRequest
	if err := json.Unmarshal(frame, &raw); err != nil {
		return Request{}, Errorf(CodeBadRequest, "frame is not a JSON object: %s", jsonProblem(err))
	}
	req := Request{}
	if len(raw.ID) > 0 && !bytes.Equal(raw.ID, []byte("null")) {
		if !validID(raw.ID) {
			return Request{}, Errorf(CodeBadRequest, "id must be a number or a string of at most %d bytes", maxIDLen)
		}
		req.ID = raw.ID
	}
	if perr := CheckJSON(frame, frameDepth); perr != nil {
		return req, Errorf(CodeBadRequest, "frame refused: %s", perr.Message)
	}
	if len(raw.Op) == 0 {
		return req, Errorf(CodeBadRequest, "op is required")
	}
	// A null op decodes to "" without an error: both are missing ops.
	if err := json.Unmarshal(raw.Op, &req.Op); err != nil || req.Op == "" {
		return req, Errorf(CodeBadRequest, "op must be a non-empty string")
	}
	if len(raw.Args) > 0 && !bytes.Equal(raw.Args, []byte("null")) {
		if trimmed := bytes.TrimSpace(raw.Args); len(trimmed) == 0 || trimmed[0] != '{' {
			return req, Errorf(CodeBadRequest, "args must be an object")
		}
		req.Args = raw.Args
	}
	return req, nil
}

// validID reports whether id may be echoed back: a JSON number or string,
// at most maxIDLen bytes, and valid UTF-8 (the reply goes out in a text
// frame, and encoding/json passes invalid bytes inside strings through).
func validID(id json.RawMessage) bool {
	if len(id) > maxIDLen || !utf8.Valid(id) {
		return false
	}
	switch id[0] {
	case '"':
		var s string
		return json.Unmarshal(id, &s) == nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		_, err := strconv.ParseFloat(string(id), 64)
		return err == nil
	}
	return false
}

// jsonProblem describes a decoding error without echoing client data.
func jsonProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return "syntax error at byte " + strconv.FormatInt(e.Offset, 10)
	case *json.UnmarshalTypeError:
		if e.Field != "" {
			return "field " + e.Field + " has the wrong type"
		}
		return "wrong type"
	}
	return "invalid JSON"
}

// DecodeArgs decodes a request's args into v, mapping JSON problems to a
// bad_request error that names the field.
func DecodeArgs(args json.RawMessage, v any) *Error {
	if len(args) == 0 {
		args = []byte("{}")
	}
	if err := json.Unmarshal(args, v); err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return pe
		}
		return Errorf(CodeBadRequest, "args: %s", jsonProblem(err))
	}
	return nil
}

// SplitFrames calls fn for every non-empty newline-separated frame in msg.
func SplitFrames(msg []byte, fn func(frame []byte)) {
	for len(msg) > 0 {
		i := bytes.IndexByte(msg, '\n')
		var frame []byte
		if i < 0 {
			frame, msg = msg, nil
		} else {
			frame, msg = msg[:i], msg[i+1:]
		}
		if len(bytes.TrimSpace(frame)) > 0 {
			fn(frame)
		}
	}
}

// AppendResult appends a success reply frame to dst. result must be valid JSON.
func AppendResult(dst []byte, id json.RawMessage, result []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"result":`...)
	if len(result) == 0 {
		result = []byte("{}")
	}
	dst = append(dst, result...)
	return append(dst, '}')
}

// AppendError appends an error reply frame to dst. A frame without an id gets
// an error frame without one.
func AppendError(dst []byte, id json.RawMessage, e *Error) []byte {
	body, err := json.Marshal(e)
	if err != nil { // cannot happen: Error has only plain fields
		body = []byte(`{"code":"internal","message":"internal error"}`)
	}
	if len(id) == 0 {
		dst = append(dst, `{"error":`...)
	} else {
		dst = append(dst, `{"id":`...)
		dst = appendID(dst, id)
		dst = append(dst, `,"error":`...)
	}
	dst = append(dst, body...)
	return append(dst, '}')
}

func appendID(dst []byte, id json.RawMessage) []byte {
	if len(id) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, id...)
}

// EncodeEvent encodes an event frame.
func EncodeEvent(name, channel string, seq uint64, data any) ([]byte, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return AppendEvent(make([]byte, 0, len(b)+len(name)+len(channel)+48), name, channel, seq, b), nil
}

// AppendEvent appends an event frame with already-encoded data (which
// must be valid JSON) to dst: the same bytes EncodeEvent produces,
// without encoding data again.
func AppendEvent(dst []byte, name, channel string, seq uint64, data []byte) []byte {
	dst = append(dst, `{"event":`...)
	dst = AppendString(dst, name)
	if channel != "" {
		dst = append(dst, `,"channel":`...)
		dst = AppendString(dst, channel)
	}
	if seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// AppendString appends s as a JSON string, byte for byte as
// encoding/json would write it. Plain printable ASCII (every id and
// event name) is copied directly; anything else goes through
// encoding/json.
func AppendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
