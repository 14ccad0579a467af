// Package auth verifies and mints the JWTs Switchboard accepts: session
// tokens (who a connection is) and join tokens (a short-lived grant to
// join one channel with some permissions). Tokens are signed with HS256
// (a shared secret) or EdDSA (Ed25519; the server holds only the public
// key).
package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Permissions a join token may grant.
const (
	PermRead     = "read"
	PermWrite    = "write"
	PermModerate = "moderate"
)

// Perms lists the permissions a join token may grant.
var Perms = []string{PermRead, PermWrite, PermModerate}

// TypeJoin is the typ claim of a join token. Session tokens carry no typ.
const TypeJoin = "join"

// Session is what a verified session token says.
type Session struct {
	User  string
	Name  string
	Image string
	Admin bool
}

// Join is what a verified join token says.
type Join struct {
	User    string
	Channel string
	Perms   []string
	// IssuedAt is the iat claim (zero: none), ID the jti claim ("":
	// none; with one the token is good for one join), Expires the exp.
	IssuedAt time.Time
	ID       string
	Expires  time.Time
}

// Verifier checks tokens. The zero Verifier is development mode: it
// accepts no tokens, and Dev reports true.
type Verifier struct {
	secret []byte
	public ed25519.PublicKey
	// Leeway tolerates clock skew on exp and nbf.
	Leeway time.Duration
}

// NewHS256 verifies tokens signed with a shared secret.
func NewHS256(secret string) *Verifier {
	return &Verifier{secret: []byte(secret), Leeway: 5 * time.Second}
}

// NewEdDSA verifies tokens signed by the private half of an Ed25519 key;
// pemFile holds the PKIX public key.
func NewEdDSA(pemFile string) (*Verifier, error) {
	b, err := os.ReadFile(pemFile)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("public key %s: no PEM block", pemFile)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", pemFile, err)
	}
	pk, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key %s is not Ed25519", pemFile)
	}
	return &Verifier{public: pk, Leeway: 5 * time.Second}, nil
}

// Dev reports whether no key is configured (development auth).
func (v *Verifier) Dev() bool { return v == nil || (v.secret == nil && v.public == nil) }

type sessionClaims struct {
	Name  string `json:"name,omitempty"`
	Image string `json:"image,omitempty"`
	Admin bool   `json:"admin,omitempty"`
	// Typ, Channel and Perms are only read, to tell a join token presented
	// as a session token: either claim present (even null) makes it one.
	Typ     string          `json:"typ,omitempty"`
	Channel json.RawMessage `json:"channel,omitempty"`
	Perms   json.RawMessage `json:"perms,omitempty"`
	jwt.RegisteredClaims
}

type joinClaims struct {
	Typ     string   `json:"typ"`
	Channel string   `json:"channel"`
	Perms   []string `json:"perms"`
	jwt.RegisteredClaims
}

func (v *Verifier) parse(token string, claims jwt.Claims) *protocol.Error {
	if v.Dev() {
		return protocol.Errorf(protocol.CodeTokenInvalid, "this server runs in development auth mode and accepts no tokens")
	}
	methods := []string{"HS256"}
	if v.public != nil {
		methods = []string{"EdDSA"}
	}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if v.public != nil {
			return v.public, nil
		}
		return v.secret, nil
	}, jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithLeeway(v.Leeway))
	switch {
	case err == nil:
		return strictClaims(token)
	case errors.Is(err, jwt.ErrTokenExpired):
		return protocol.Errorf(protocol.CodeTokenExpired, "token expired")
	default:
		return protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: %s", reason(err))
	}
}

// strictClaims refuses a signed token whose claims are not strict JSON
// (protocol.CheckJSON): the JWT library decodes them with encoding/json,
// which silently replaces invalid UTF-8 in a name or image claim.
func strictClaims(token string) *protocol.Error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: malformed")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: malformed")
	}
	if perr := protocol.CheckJSON(b, protocol.MaxJSONDepth); perr != nil {
		return protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: claims: %s", perr.Message)
	}
	return nil
}

// reason names why a token failed without echoing it.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing exp"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	}
	return "rejected"
}

// Session verifies a session token. A join token (typ "join", or a
// channel or perms claim) is not one, though it is signed with the same key.
func (v *Verifier) Session(token string) (Session, *protocol.Error) {
	var c sessionClaims
	perr := v.parse(token, &c)
	if perr != nil && perr.Code != protocol.CodeTokenExpired {
		return Session{}, perr
	}
	// An expired token's signature was checked too: a join token is
	// invalid here, expired or not (a fresh one would not help).
	if c.Typ == TypeJoin || c.Channel != nil || c.Perms != nil {
		return Session{}, protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: a join token is not a session token")
	}
	if perr != nil {
		return Session{}, perr
	}
	if c.Subject == "" {
		return Session{}, protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: missing sub")
	}
	return Session{User: c.Subject, Name: c.Name, Image: c.Image, Admin: c.Admin}, nil
}

// Join verifies a join token: typ "join" (or, from issuers that predate
// typ, none) and a channel claim. A session token has neither.
func (v *Verifier) Join(token string) (Join, *protocol.Error) {
	var c joinClaims
	perr := v.parse(token, &c)
	if perr != nil && perr.Code != protocol.CodeTokenExpired {
		return Join{}, perr
	}
	if (c.Typ != "" && c.Typ != TypeJoin) || c.Channel == "" {
		return Join{}, protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: not a join token")
	}
	if perr != nil {
		return Join{}, perr
	}
	if c.Subject == "" {
		return Join{}, protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: missing sub")
	}
	if err := CheckPerms(c.Perms); err != nil {
		return Join{}, protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: %s", err)
	}
	j := Join{User: c.Subject, Channel: c.Channel, Perms: slices.Clone(c.Perms), ID: c.ID}
	if c.IssuedAt != nil {
		j.IssuedAt = c.IssuedAt.Time
	}
	if c.ExpiresAt != nil {
		j.Expires = c.ExpiresAt.Time
	}
	return j, nil
}

// CheckPerms reports the first permission that is not one of Perms.
func CheckPerms(perms []string) error {
	for _, p := range perms {
		if !slices.Contains(Perms, p) {
			return fmt.Errorf("unknown permission %q (%s)", p, strings.Join(Perms, ", "))
		}
	}
	return nil
}

// Signer mints tokens (the CLI, tests and the load generator use it).
type Signer struct {
	secret  []byte
	private ed25519.PrivateKey
}

// NewSigner signs with HS256 and secret.
func NewSigner(secret string) *Signer { return &Signer{secret: []byte(secret)} }

// NewEdDSASigner signs with an Ed25519 private key.
func NewEdDSASigner(k ed25519.PrivateKey) *Signer { return &Signer{private: k} }

func (s *Signer) sign(claims jwt.Claims) (string, error) {
	if s.private != nil {
		return jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(s.private)
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.secret)
}

// SessionToken mints a session token valid for ttl.
func (s *Signer) SessionToken(sess Session, ttl time.Duration) (string, error) {
	return s.SessionTokenUntil(sess, time.Now().Add(ttl))
}

// SessionTokenUntil mints a session token that expires at exp (whole
// seconds: the claim has no finer grain).
func (s *Signer) SessionTokenUntil(sess Session, exp time.Time) (string, error) {
	return s.sign(sessionClaims{Name: sess.Name, Image: sess.Image, Admin: sess.Admin, RegisteredClaims: jwt.RegisteredClaims{
		Subject: sess.User, IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(exp),
	}})
}

// JoinToken mints a join token (typ "join") valid for ttl, issued now
// (unless j.IssuedAt says when), single-use when j.ID is set.
func (s *Signer) JoinToken(j Join, ttl time.Duration) (string, error) {
	return s.JoinTokenUntil(j, issuedAt(j).Add(ttl))
}

// JoinTokenUntil mints a join token that expires at exp, issued now
// (unless j.IssuedAt says when), single-use when j.ID is set.
func (s *Signer) JoinTokenUntil(j Join, exp time.Time) (string, error) {
	return s.sign(joinClaims{Typ: TypeJoin, Channel: j.Channel, Perms: j.Perms, RegisteredClaims: jwt.RegisteredClaims{
		Subject: j.User, IssuedAt: jwt.NewNumericDate(issuedAt(j)), ExpiresAt: jwt.NewNumericDate(exp), ID: j.ID,
	}})
}

// NewJoinID returns a fresh jti for a single-use join token (Join.ID):
// 128 random bits, hex.
func NewJoinID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func issuedAt(j Join) time.Time {
	if j.IssuedAt.IsZero() {
		return time.Now()
	}
	return j.IssuedAt
}

// APIKeys are the server API keys a node accepts: several, so that a key
// can be rotated without downtime (add the new one, move the backends,
// drop the old one).
type APIKeys []string

// ParseAPIKeys reads a comma-separated list of keys (--api-key).
func ParseAPIKeys(s string) APIKeys {
	var out APIKeys
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// Match reports whether cred is one of the keys. It compares cred with
// every key in constant time, so the time taken says nothing of which
// key, or how much of one, matched.
func (k APIKeys) Match(cred string) bool {
	ok := 0
	for _, key := range k {
		ok |= subtle.ConstantTimeCompare([]byte(cred), []byte(key))
	}
	return ok == 1
}
