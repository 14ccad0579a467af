package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// MaxJSONDepth bounds how deeply a free-form object (a message's data, any
// metadata) nests: the object itself is level 1. A request frame nests two
// levels more (the frame, then args), so a frame may nest MaxJSONDepth+2.
const MaxJSONDepth = 32

// frameDepth bounds a whole request frame: data and metadata sit under
// the frame and its args.
const frameDepth = MaxJSONDepth + 2

// Strict JSON. encoding/json accepts what a browser's WebSocket must not
// be sent: it passes invalid UTF-8 inside a json.RawMessage through
// verbatim (and silently replaces it in a string), keeps \ud800-style
// escapes of lone surrogates, and decodes numbers no float64 holds into a
// RawMessage without complaint. The server refuses all of these at the
// edge, so whatever it stores and sends back out is valid UTF-8 JSON that
// any standard decoder reads.

// CheckJSON reports the first reason b is not strict JSON — one value,
// valid UTF-8 throughout (keys and strings included, also once \u escapes
// are decoded: no lone surrogate), nesting at most maxDepth objects and
// arrays deep, and every number within float64's range — or nil.
func CheckJSON(b []byte, maxDepth int) *Error {
	c := strictScanner{b: b, max: maxDepth}
	c.skipSpace()
	if !c.value() {
		return c.err
	}
	c.skipSpace()
	if c.err == nil && c.i < len(c.b) {
		c.fail("unexpected data after the value at byte %d", c.i)
	}
	return c.err
}

// CheckObject validates a free-form object field (data, metadata): absent,
// null, or an object of at most max bytes that is strict JSON (CheckJSON)
// nesting at most MaxJSONDepth deep.
func CheckObject(field string, v json.RawMessage, max int) *Error {
	if len(v) == 0 {
		return nil
	}
	if t := bytes.TrimSpace(v); len(t) == 0 || (t[0] != '{' && !bytes.Equal(t, []byte("null"))) {
		return Errorf(CodeBadRequest, "%s must be an object", field)
	}
	if len(v) > max {
		return Errorf(CodeTooLarge, "%s is %d bytes, the limit is %d", field, len(v), max)
	}
	if err := CheckJSON(v, MaxJSONDepth); err != nil {
		return Errorf(CodeBadRequest, "%s: %s", field, err.Message)
	}
	return nil
}

// strictScanner validates one JSON text without building anything.
type strictScanner struct {
	b     []byte
	i     int
	depth int
	max   int
	err   *Error
}

func (c *strictScanner) fail(format string, args ...any) bool {
	if c.err == nil {
		c.err = Errorf(CodeBadRequest, format, args...)
	}
	return false
}

func (c *strictScanner) skipSpace() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *strictScanner) value() bool {
	if c.i >= len(c.b) {
		return c.fail("JSON ends early")
	}
	switch ch := c.b[c.i]; {
	case ch == '{':
		return c.container('}')
	case ch == '[':
		return c.container(']')
	case ch == '"':
		return c.str()
	case ch == '-' || (ch >= '0' && ch <= '9'):
		return c.number()
	case ch == 't':
		return c.literal("true")
	case ch == 'f':
		return c.literal("false")
	case ch == 'n':
		return c.literal("null")
	}
	return c.fail("invalid JSON at byte %d", c.i)
}

func (c *strictScanner) literal(word string) bool {
	if !bytes.HasPrefix(c.b[c.i:], []byte(word)) {
		return c.fail("invalid JSON at byte %d", c.i)
	}
	c.i += len(word)
	return true
}

// container scans an object (end '}') or an array (end ']').
func (c *strictScanner) container(end byte) bool {
	if c.depth++; c.depth > c.max {
		return c.fail("JSON nests deeper than %d levels", c.max)
	}
	c.i++ // the opening bracket
	c.skipSpace()
	if c.i < len(c.b) && c.b[c.i] == end {
		c.i++
		c.depth--
		return true
	}
	for {
		if end == '}' {
			if c.i >= len(c.b) || c.b[c.i] != '"' {
				return c.fail("invalid JSON at byte %d: expected a key", c.i)
			}
			if !c.str() {
				return false
			}
			c.skipSpace()
			if c.i >= len(c.b) || c.b[c.i] != ':' {
				return c.fail("invalid JSON at byte %d: expected ':'", c.i)
			}
			c.i++
			c.skipSpace()
		}
		if !c.value() {
			return false
		}
		c.skipSpace()
		if c.i >= len(c.b) {
			return c.fail("JSON ends early")
		}
		switch c.b[c.i] {
		case ',':
			c.i++
			c.skipSpace()
		case end:
			c.i++
			c.depth--
			return true
		default:
			return c.fail("invalid JSON at byte %d", c.i)
		}
	}
}

// str scans a string: valid UTF-8, no control characters, valid escapes,
// and \u escapes that pair surrogates. Runs of plain ASCII, the bulk of
// any string, go through a table in a loop of their own.
func (c *strictScanner) str() bool {
	start := c.i
	b, i := c.b, c.i+1 // past the opening quote
	for i < len(b) {
		for i < len(b) && plainASCII[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch ch := b[i]; {
		case ch == '"':
			c.i = i + 1
			return true
		case ch == '\\':
			c.i = i
			if !c.escape() {
				return false
			}
			i = c.i
		case ch < 0x20:
			return c.fail("string at byte %d holds a raw control character", start)
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				return c.fail("string at byte %d is not valid UTF-8", start)
			}
			i += n
		}
	}
	c.i = i
	return c.fail("JSON ends inside a string")
}

// plainASCII marks the bytes a string holds as they are: printable ASCII
// but the quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for ch := 0x20; ch < utf8.RuneSelf; ch++ {
		t[ch] = ch != '"' && ch != '\\'
	}
	return t
}()

func (c *strictScanner) escape() bool {
	at := c.i
	if c.i+1 >= len(c.b) {
		return c.fail("JSON ends inside a string")
	}
	switch c.b[c.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		c.i += 2
		return true
	case 'u':
	default:
		return c.fail("invalid escape at byte %d", at)
	}
	r, ok := c.hex4(c.i + 2)
	if !ok {
		return c.fail("invalid \\u escape at byte %d", at)
	}
	c.i += 6
	switch {
	case r >= 0xdc00 && r <= 0xdfff:
		return c.fail("\\u escape at byte %d is a lone surrogate", at)
	case r >= 0xd800 && r <= 0xdbff:
		// A high surrogate must be followed by an escaped low one.
		if c.i+1 < len(c.b) && c.b[c.i] == '\\' && c.b[c.i+1] == 'u' {
			if lo, ok := c.hex4(c.i + 2); ok && lo >= 0xdc00 && lo <= 0xdfff {
				c.i += 6
				return true
			}
		}
		return c.fail("\\u escape at byte %d is a lone surrogate", at)
	}
	return true
}

func (c *strictScanner) hex4(at int) (rune, bool) {
	if at+4 > len(c.b) {
		return 0, false
	}
	var r rune
	for _, ch := range c.b[at : at+4] {
		switch {
		case ch >= '0' && ch <= '9':
			r = r<<4 | rune(ch-'0')
		case ch >= 'a' && ch <= 'f':
			r = r<<4 | rune(ch-'a'+10)
		case ch >= 'A' && ch <= 'F':
			r = r<<4 | rune(ch-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number scans a JSON number and refuses one beyond float64's range.
func (c *strictScanner) number() bool {
	start := c.i
	if c.b[c.i] == '-' {
		c.i++
	}
	digits := func() int {
		n := 0
		for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
			c.i++
			n++
		}
		return n
	}
	if c.i < len(c.b) && c.b[c.i] == '0' {
		c.i++
	} else if digits() == 0 {
		return c.fail("invalid number at byte %d", start)
	}
	if c.i < len(c.b) && c.b[c.i] == '.' {
		c.i++
		if digits() == 0 {
			return c.fail("invalid number at byte %d", start)
		}
	}
	exp := false
	if c.i < len(c.b) && (c.b[c.i] == 'e' || c.b[c.i] == 'E') {
		exp = true
		c.i++
		if c.i < len(c.b) && (c.b[c.i] == '+' || c.b[c.i] == '-') {
			c.i++
		}
		if digits() == 0 {
			return c.fail("invalid number at byte %d", start)
		}
	}
	// Without an exponent only a number of over 308 digits can overflow.
	if exp || c.i-start > 308 {
		if _, err := strconv.ParseFloat(string(c.b[start:c.i]), 64); err != nil {
			return c.fail("number at byte %d is out of range", start)
		}
	}
	return true
}

// Sanitize returns raw with what a browser must not be sent repaired:
// invalid UTF-8 and escaped lone surrogates become U+FFFD. It is for
// JSON stored before the server refused such input (CheckJSON at the
// edge): whatever the server sends stays valid UTF-8. Valid input — all
// input stored since — comes back as it is, checked at little cost.
func Sanitize(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || (utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`))) {
		return raw
	}
	if CheckJSON(raw, 1<<20) == nil {
		return raw
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return json.RawMessage("null")
	}
	out, err := json.Marshal(v) // writes strings as valid UTF-8
	if err != nil {
		return json.RawMessage("null")
	}
	return out
}
