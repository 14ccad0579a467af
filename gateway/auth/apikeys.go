package auth

import (
	"net/http"
	"strings"
)

// Configured reports whether any key is set.
func (k APIKeys) Configured() bool { return len(k) > 0 }

// Request reports whether r carries one of the keys as its bearer
// credential (Authorization: Bearer <key>).
func (k APIKeys) Request(r *http.Request) bool {
	cred, ok := BearerCredential(r)
	return ok && k.Match(cred)
}

// BearerCredential returns the credential of an Authorization: Bearer
// header (the scheme is case-insensitive, as RFC 7235 says).
func BearerCredential(r *http.Request) (string, bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}
