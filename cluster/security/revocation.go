package security

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// Revocation.
//
// An identity with a CRL file (IdentityConfig.CRLFile) refuses, at every
// handshake, a peer whose certificate (or an intermediate of its chain)
// one of the lists names. Each list must be signed by a CA of the
// identity's CA file, or the files do not load. The file is re-read with
// the others; when a reload names more certificates, the connections made
// with them are cut at once (TrackConn), so a revoked node loses the
// cluster's transport within a reload interval, not at its next dial. A
// list past its next update still applies (its entries do not expire);
// the node warns so that the operator re-signs it (switchboard certs
// revoke, without --cert, re-signs the list as it is).

// revocations is what a CRL file names: issuer and serial of every
// certificate revoked.
type revocations struct {
	serials map[revokedKey]struct{}
	// nextUpdate is the earliest of the lists' next updates (zero: none
	// says).
	nextUpdate time.Time
	lists      int
}

type revokedKey struct{ issuer, serial string }

func keyOf(c *x509.Certificate) revokedKey {
	return revokedKey{string(c.RawIssuer), c.SerialNumber.String()}
}

// parseCRLs reads the lists in raw (PEM blocks "X509 CRL", or one DER
// list) and checks that each is signed by one of cas.
func parseCRLs(raw []byte, cas []*x509.Certificate) (*revocations, error) {
	var ders [][]byte
	for rest := raw; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "X509 CRL" {
			ders = append(ders, b.Bytes)
		}
	}
	if len(ders) == 0 {
		ders = [][]byte{raw} // DER, or nothing a list can be read from
	}
	r := &revocations{serials: map[revokedKey]struct{}{}}
	for _, der := range ders {
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("not a certificate revocation list (PEM \"X509 CRL\" or DER): %w", err)
		}
		if !signedByOneOf(l, cas) {
			return nil, fmt.Errorf("the revocation list of %q is not signed by a CA of the CA file", l.Issuer)
		}
		for _, e := range l.RevokedCertificateEntries {
			r.serials[revokedKey{string(l.RawIssuer), e.SerialNumber.String()}] = struct{}{}
		}
		if !l.NextUpdate.IsZero() && (r.nextUpdate.IsZero() || l.NextUpdate.Before(r.nextUpdate)) {
			r.nextUpdate = l.NextUpdate
		}
		r.lists++
	}
	return r, nil
}

func signedByOneOf(l *x509.RevocationList, cas []*x509.Certificate) bool {
	for _, ca := range cas {
		if string(ca.RawSubject) == string(l.RawIssuer) && l.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}

// errRevoked says a peer presented a revoked certificate.
var errRevoked = errors.New("the peer's certificate is revoked (the CRL file names it)")

// check refuses a chain with a revoked certificate. A nil r revokes
// nothing.
func (r *revocations) check(chain []*x509.Certificate) error {
	if r == nil {
		return nil
	}
	for _, c := range chain {
		if _, ok := r.serials[keyOf(c)]; ok {
			return fmt.Errorf("%w: %q, serial %s", errRevoked, c.Subject, c.SerialNumber.Text(16))
		}
	}
	return nil
}

// parseCAs returns the CA certificates of a PEM bundle.
func parseCAs(bundle []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for rest := bundle; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil && c.IsCA {
			out = append(out, c)
		}
	}
}

// verifyPeer is a handshake's VerifyConnection under m: a node identity
// requires a node certificate, and no certificate of the chain may be
// revoked.
func (id *Identity) verifyPeer(m *material) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if id.cfg.Node {
			if err := requireNodePeer(cs); err != nil {
				return err
			}
		}
		return m.revoked.check(cs.PeerCertificates)
	}
}

// TrackConn remembers a connection made under this identity with a peer
// that presented chain, until it closes: a reload that revokes one of
// chain's certificates closes it. It returns the connection to use in
// conn's place.
func (id *Identity) TrackConn(conn net.Conn, chain []*x509.Certificate) net.Conn {
	if id.cfg.CRLFile == "" || len(chain) == 0 {
		return conn
	}
	t := &trackedConn{Conn: conn, chain: chain, id: id}
	id.live.Lock()
	if id.live.conns == nil {
		id.live.conns = map[*trackedConn]struct{}{}
	}
	id.live.conns[t] = struct{}{}
	id.live.Unlock()
	return t
}

// liveConns are the tracked connections of an identity.
type liveConns struct {
	sync.Mutex
	conns map[*trackedConn]struct{}
}

type trackedConn struct {
	net.Conn
	chain []*x509.Certificate
	id    *Identity
	once  sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.id.live.Lock()
		delete(t.id.live.conns, t)
		t.id.live.Unlock()
	})
	return t.Conn.Close()
}

// cutRevoked closes the tracked connections whose peer r revokes.
func (id *Identity) cutRevoked(r *revocations) {
	var cut []*trackedConn
	id.live.Lock()
	for t := range id.live.conns {
		if r.check(t.chain) != nil {
			cut = append(cut, t)
		}
	}
	id.live.Unlock()
	for _, t := range cut {
		id.log.Warn("cutting a connection: the peer's certificate is now revoked", "peer", t.RemoteAddr().String(),
			"subject", t.chain[0].Subject.String(), "serial", t.chain[0].SerialNumber.Text(16))
		t.Close()
	}
}

// Revoke returns a revocation list signed by the CA whose key is caKey
// (caCerts may be a bundle) naming serials and everything prev, a list
// of the same CA (nil: none yet), named; it is valid for lifetime and
// numbered one past prev.
func Revoke(caCerts, caKey, prev []byte, serials []*big.Int, lifetime time.Duration, now time.Time) ([]byte, error) {
	if lifetime <= 0 {
		return nil, fmt.Errorf("lifetime %s: must be positive", lifetime)
	}
	ca, signer, err := loadCA(caCerts, caKey)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(lifetime)}
	seen := map[string]bool{}
	if len(prev) > 0 {
		b, _ := pem.Decode(prev)
		if b == nil || b.Type != "X509 CRL" {
			return nil, errors.New("the existing revocation list is not a PEM \"X509 CRL\"")
		}
		old, err := x509.ParseRevocationList(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the existing revocation list: %w", err)
		}
		if err := old.CheckSignatureFrom(ca); err != nil {
			return nil, fmt.Errorf("the existing revocation list is not this CA's: %w", err)
		}
		for _, e := range old.RevokedCertificateEntries {
			seen[e.SerialNumber.String()] = true
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, e)
		}
		if old.Number != nil {
			tmpl.Number = new(big.Int).Add(old.Number, big.NewInt(1))
		}
	}
	for _, s := range serials {
		if !seen[s.String()] {
			seen[s.String()] = true
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: now})
		}
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca, signer)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}
