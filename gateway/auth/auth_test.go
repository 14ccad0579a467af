package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/switchboard-chat/switchboard/protocol"
)

// keys is one algorithm's verifier, the signer it trusts, and a signer it
// does not (another key of the same algorithm).
type keys struct {
	name           string
	verify         *Verifier
	signer, forger *Signer
	public         ed25519.PublicKey // EdDSA only
}

func testKeys(t *testing.T) []keys {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "auth.pub.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ed, err := NewEdDSA(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	return []keys{
		{name: "HS256", verify: NewHS256("s3cret"), signer: NewSigner("s3cret"), forger: NewSigner("not-the-secret")},
		{name: "EdDSA", verify: ed, signer: NewEdDSASigner(priv), forger: NewEdDSASigner(other), public: pub},
	}
}

// claims mints a token with exactly these claims (exp an hour away unless
// given; a nil exp leaves it out).
func (k keys) claims(t *testing.T, s *Signer, c jwt.MapClaims) string {
	t.Helper()
	if _, ok := c["exp"]; !ok {
		c["exp"] = time.Now().Add(time.Hour).Unix()
	} else if c["exp"] == nil {
		delete(c, "exp")
	}
	tok, err := s.sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func code(perr *protocol.Error) protocol.Code {
	if perr == nil {
		return ""
	}
	return perr.Code
}

func TestTokenTypesDoNotCross(t *testing.T) {
	for _, k := range testKeys(t) {
		t.Run(k.name, func(t *testing.T) {
			sess, err := k.signer.SessionToken(Session{User: "alice", Name: "Alice", Admin: true}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			join, err := k.signer.JoinToken(Join{User: "alice", Channel: "general", Perms: []string{PermRead, PermModerate}}, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if s, perr := k.verify.Session(sess); perr != nil || s != (Session{User: "alice", Name: "Alice", Admin: true}) {
				t.Fatalf("session token as session: %+v %v", s, perr)
			}
			if j, perr := k.verify.Join(join); perr != nil || j.User != "alice" || j.Channel != "general" || !slices.Equal(j.Perms, []string{PermRead, PermModerate}) {
				t.Fatalf("join token as join: %+v %v", j, perr)
			}
			if s, perr := k.verify.Session(join); code(perr) != protocol.CodeTokenInvalid {
				t.Fatalf("join token accepted as a session token: %+v %v", s, perr)
			}
			if j, perr := k.verify.Join(sess); code(perr) != protocol.CodeTokenInvalid {
				t.Fatalf("session token accepted as a join token: %+v %v", j, perr)
			}
		})
	}
}

// TestTokenClaims covers each claim rule for both verifiers, with tokens
// signed by the trusted key.
func TestTokenClaims(t *testing.T) {
	const ok, invalid, expired = "", protocol.CodeTokenInvalid, protocol.CodeTokenExpired
	for _, k := range testKeys(t) {
		t.Run(k.name, func(t *testing.T) {
			for _, tc := range []struct {
				name          string
				claims        jwt.MapClaims
				session, join protocol.Code
			}{
				{"plain session", jwt.MapClaims{"sub": "u"}, ok, invalid},
				{"typ join", jwt.MapClaims{"sub": "u", "typ": "join", "channel": "c", "perms": []string{"write"}}, invalid, ok},
				// Join tokens minted before typ existed: the channel says what they are.
				{"join without typ", jwt.MapClaims{"sub": "u", "channel": "c", "perms": []string{"write"}}, invalid, ok},
				{"only typ join", jwt.MapClaims{"sub": "u", "typ": "join"}, invalid, invalid},
				{"only perms", jwt.MapClaims{"sub": "u", "perms": []string{"read"}}, invalid, invalid},
				{"null perms", jwt.MapClaims{"sub": "u", "perms": nil}, invalid, invalid},
				{"empty channel", jwt.MapClaims{"sub": "u", "channel": ""}, invalid, invalid},
				{"other typ", jwt.MapClaims{"sub": "u", "typ": "refresh", "channel": "c"}, invalid, invalid},
				{"unknown perm", jwt.MapClaims{"sub": "u", "typ": "join", "channel": "c", "perms": []string{"root"}}, invalid, invalid},
				{"missing sub", jwt.MapClaims{"name": "n"}, invalid, invalid},
				{"join missing sub", jwt.MapClaims{"typ": "join", "channel": "c"}, invalid, invalid},
				{"missing exp", jwt.MapClaims{"sub": "u", "exp": nil}, invalid, invalid},
				{"expired", jwt.MapClaims{"sub": "u", "exp": time.Now().Add(-time.Minute).Unix()}, expired, invalid},
				{"join expired", jwt.MapClaims{"sub": "u", "typ": "join", "channel": "c", "exp": time.Now().Add(-time.Minute).Unix()}, invalid, expired},
				{"within leeway", jwt.MapClaims{"sub": "u", "exp": time.Now().Add(-2 * time.Second).Unix()}, ok, invalid},
				{"not yet valid", jwt.MapClaims{"sub": "u", "nbf": time.Now().Add(time.Hour).Unix()}, invalid, invalid},
			} {
				tok := k.claims(t, k.signer, tc.claims)
				if _, perr := k.verify.Session(tok); code(perr) != tc.session {
					t.Errorf("%s as session: %v, want %q", tc.name, perr, tc.session)
				}
				if _, perr := k.verify.Join(tok); code(perr) != tc.join {
					t.Errorf("%s as join: %v, want %q", tc.name, perr, tc.join)
				}
			}
		})
	}
}

// TestTokenSignatures: another key, another algorithm, no signature and
// garbage are all token_invalid, for session and join tokens alike.
func TestTokenSignatures(t *testing.T) {
	ks := testKeys(t)
	hs, ed := ks[0], ks[1]
	sessClaims := func() jwt.MapClaims { return jwt.MapClaims{"sub": "u"} }
	joinClaims := func() jwt.MapClaims { return jwt.MapClaims{"sub": "u", "typ": "join", "channel": "c"} }
	none := func(c jwt.MapClaims) string {
		c["exp"] = time.Now().Add(time.Hour).Unix()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// The classic confusion: an HS256 token keyed with the public key's bytes.
	pubAsSecret := NewSigner(string(ed.public))
	for _, tc := range []struct {
		name   string
		verify *Verifier
		mint   func(jwt.MapClaims) string
	}{
		{"HS256 other secret", hs.verify, func(c jwt.MapClaims) string { return hs.claims(t, hs.forger, c) }},
		{"EdDSA other key", ed.verify, func(c jwt.MapClaims) string { return ed.claims(t, ed.forger, c) }},
		{"EdDSA token, HS256 server", hs.verify, func(c jwt.MapClaims) string { return ed.claims(t, ed.signer, c) }},
		{"HS256 token, EdDSA server", ed.verify, func(c jwt.MapClaims) string { return hs.claims(t, hs.signer, c) }},
		{"HS256 keyed with the public key", ed.verify, func(c jwt.MapClaims) string { return hs.claims(t, pubAsSecret, c) }},
		{"alg none, HS256 server", hs.verify, none},
		{"alg none, EdDSA server", ed.verify, none},
		{"garbage", hs.verify, func(jwt.MapClaims) string { return "not.a.jwt" }},
		{"development server", &Verifier{}, func(c jwt.MapClaims) string { return hs.claims(t, hs.signer, c) }},
	} {
		if s, perr := tc.verify.Session(tc.mint(sessClaims())); code(perr) != protocol.CodeTokenInvalid {
			t.Errorf("%s: session %+v, %v", tc.name, s, perr)
		}
		if j, perr := tc.verify.Join(tc.mint(joinClaims())); code(perr) != protocol.CodeTokenInvalid {
			t.Errorf("%s: join %+v, %v", tc.name, j, perr)
		}
	}
}

func TestCheckPerms(t *testing.T) {
	if err := CheckPerms([]string{"read", "write", "moderate"}); err != nil {
		t.Fatal(err)
	}
	if err := CheckPerms(nil); err != nil {
		t.Fatal(err)
	}
	if err := CheckPerms([]string{"read", "admin"}); err == nil {
		t.Fatal("admin accepted")
	}
}

// rawToken signs an HS256 token whose claims are exactly payload, bytes
// and all (jwt.MapClaims would re-encode them as valid UTF-8).
func rawToken(t *testing.T, secret, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

// TestClaimsMustBeStrictJSON: a signed token whose claims hold invalid
// UTF-8 or a lone surrogate is refused, not silently repaired.
func TestClaimsMustBeStrictJSON(t *testing.T) {
	v := NewHS256("s3cret")
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	good := rawToken(t, "s3cret", `{"sub":"alice","name":"Alïce","exp":`+exp+`}`)
	if s, perr := v.Session(good); perr != nil || s.Name != "Alïce" {
		t.Fatalf("valid token: %+v, %v", s, perr)
	}
	for name, payload := range map[string]string{
		"name not UTF-8":         "{\"sub\":\"alice\",\"name\":\"A\xfflice\",\"exp\":" + exp + "}",
		"image lone surrogate":   `{"sub":"alice","image":"\udc00","exp":` + exp + `}`,
		"custom claim not UTF-8": "{\"sub\":\"alice\",\"x\":[\"\xc3\"],\"exp\":" + exp + "}",
	} {
		if _, perr := v.Session(rawToken(t, "s3cret", payload)); perr == nil || perr.Code != protocol.CodeTokenInvalid {
			t.Errorf("%s: got %v, want token_invalid", name, perr)
		}
	}
	join := "{\"sub\":\"alice\",\"typ\":\"join\",\"channel\":\"c\xff\",\"exp\":" + exp + "}"
	if _, perr := v.Join(rawToken(t, "s3cret", join)); perr == nil || perr.Code != protocol.CodeTokenInvalid {
		t.Errorf("join token with a bad channel claim: got %v, want token_invalid", perr)
	}
}
