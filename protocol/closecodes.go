package protocol

// ValidCloseCode reports whether a WebSocket close frame may carry code
// (RFC 6455 §7.4: 1004–1006 and 1015 are never sent; 3000–4999 are
// registered and private codes, Switchboard's own among them).
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
