// Package security holds what secures a node's connections: its TLS
// identity (a certificate, its key and the CA its peers' certificates must
// chain to, read from files and re-read when they change), the TLS
// configurations and gRPC credentials built from it for the node-to-node
// transport and the client listener, the gossip encryption keys, a
// log-once record of refused peers, and the making of a CA and of the
// certificates it signs (switchboard certs).
//
// An Identity is one reusable piece: the actor transport takes its gRPC
// credentials, and any later stream between nodes (a Raft transport) takes
// ServerConfig and ClientConfig and gets the same mutual TLS, reloading
// included.
package security

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxPEMFile bounds what is read of a certificate, key or CA file: a
// bundle of a few dozen certificates fits many times over.
const maxPEMFile = 1 << 20

// IdentityConfig names the files of a TLS identity.
type IdentityConfig struct {
	// CertFile and KeyFile are the PEM certificate (with any intermediates
	// after it) and its private key.
	CertFile, KeyFile string
	// CAFile, when set, is a PEM bundle of the CAs whose certificates this
	// identity accepts from peers: a server built from it requires a
	// client certificate that chains to one of them.
	CAFile string
	// CRLFile, when set, holds certificate revocation lists (PEM or DER)
	// signed by CAs of CAFile: a peer whose certificate one names is
	// refused (see revocation.go).
	CRLFile string
	// Node makes it a node identity, for mutual TLS between nodes: its own
	// certificate must chain to CAFile and allow both server and client
	// authentication (switchboard certs create-node makes such), peers
	// must present one too, and TLS 1.3 is the minimum.
	Node bool
	// Name names the identity in logs ("cluster TLS", "client TLS").
	Name   string
	Logger *slog.Logger
}

// Identity is a certificate, its key and its CAs, re-read from their files
// by Reload (Watch calls it periodically). Handshakes read what was last
// loaded, without I/O. A change that does not load (a key that does not
// match the certificate, a certificate the CA did not sign, a file cut
// short) leaves the previous material in use.
type Identity struct {
	cfg IdentityConfig
	log *slog.Logger
	cur atomic.Pointer[material]

	// reloadMu serialises Reload and guards the fields below.
	reloadMu sync.Mutex
	// failed is what last failed to load, how, and whether that was
	// reported: a failure is reported when the same contents fail the same
	// way twice in a row,
	// so a rotation caught between writing the certificate and the key
	// does not cry wolf.
	failed         [4][]byte
	failedErr      string
	failedReported bool

	// live are the connections TrackConn remembers.
	live liveConns
}

// material is one loaded state of the files.
type material struct {
	raw     [4][]byte        // certificate, key, CA and CRL files as read
	cert    *tls.Certificate // nil for a CA bundle alone (LoadCAs)
	pool    *x509.CertPool   // nil without a CA file
	revoked *revocations     // nil without a CRL file
}

// LoadIdentity reads the files; they must load.
func LoadIdentity(cfg IdentityConfig) (*Identity, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, fmt.Errorf("%s: a certificate and a key file are both needed", cfg.Name)
	}
	if cfg.Node && cfg.CAFile == "" {
		return nil, fmt.Errorf("%s: a node identity needs a CA file", cfg.Name)
	}
	if cfg.CRLFile != "" && cfg.CAFile == "" {
		return nil, fmt.Errorf("%s: a revocation list needs the CA file of the certificates it revokes", cfg.Name)
	}
	return loadIdentity(cfg)
}

// LoadCAs reads a CA bundle alone, re-read like an identity's files: an
// identity with no certificate of its own, for PeerTLS's roots (not for
// ServerConfig or ClientConfig).
func LoadCAs(caFile, name string, log *slog.Logger) (*Identity, error) {
	if caFile == "" {
		return nil, fmt.Errorf("%s: no CA file", name)
	}
	return loadIdentity(IdentityConfig{CAFile: caFile, Name: name, Logger: log})
}

func loadIdentity(cfg IdentityConfig) (*Identity, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	id := &Identity{cfg: cfg, log: cfg.Logger.With("component", "tls", "identity", cfg.Name)}
	raw, err := id.read()
	if err != nil {
		return nil, err
	}
	m, err := id.load(raw)
	if err != nil {
		return nil, err
	}
	id.cur.Store(m)
	id.logLoaded(nil, m, "loaded")
	return id, nil
}

// Certificate returns the certificate in use (nil for a CA bundle alone).
func (id *Identity) Certificate() *x509.Certificate {
	if c := id.cur.Load().cert; c != nil {
		return c.Leaf
	}
	return nil
}

// Reload re-reads the files and, when they changed and load, puts them in
// use. It reports whether they did; an error means they changed but do not
// load (the previous material stays in use).
func (id *Identity) Reload() (bool, error) {
	id.reloadMu.Lock()
	defer id.reloadMu.Unlock()
	raw, err := id.read()
	if err == nil && equalRaw(raw, id.cur.Load().raw) {
		return false, nil
	}
	var m *material
	if err == nil {
		m, err = id.load(raw)
	}
	if err != nil {
		if !equalRaw(raw, id.failed) || err.Error() != id.failedErr {
			id.failed, id.failedErr, id.failedReported = raw, err.Error(), false
			id.log.Debug("the files changed but do not load (yet); checking again", "err", err)
		} else if !id.failedReported {
			id.failedReported = true
			id.log.Error("the changed certificate files do not load; still using the previous certificate", "err", err)
		}
		return false, err
	}
	id.failed, id.failedErr, id.failedReported = [4][]byte{}, "", false
	prev := id.cur.Swap(m)
	id.logLoaded(prev, m, "reloaded")
	if m.revoked != nil {
		id.cutRevoked(m.revoked)
	}
	return true, nil
}

// Watch reloads every interval until stop closes.
func (id *Identity) Watch(stop <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			_, _ = id.Reload() // Reload logs
		}
	}
}

// read reads the files. A missing CA or CRL file name reads as nothing.
func (id *Identity) read() ([4][]byte, error) {
	var raw [4][]byte
	for i, name := range []string{id.cfg.CertFile, id.cfg.KeyFile, id.cfg.CAFile, id.cfg.CRLFile} {
		if name == "" {
			continue
		}
		b, err := readBounded(name)
		if err != nil {
			return [4][]byte{}, fmt.Errorf("%s: %w", id.cfg.Name, err)
		}
		raw[i] = b
	}
	return raw, nil
}

func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a PEM certificate or key", name, maxPEMFile)
	}
	return b, nil
}

// load parses and checks raw contents.
func (id *Identity) load(raw [4][]byte) (*material, error) {
	m, err := id.loadCerts(raw)
	if err != nil || id.cfg.CRLFile == "" {
		return m, err
	}
	if m.revoked, err = parseCRLs(raw[3], parseCAs(raw[2])); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", id.cfg.Name, id.cfg.CRLFile, err)
	}
	return m, nil
}

// loadCerts parses and checks the certificate, key and CA files.
func (id *Identity) loadCerts(raw [4][]byte) (*material, error) {
	if id.cfg.CertFile == "" { // a CA bundle alone (LoadCAs)
		m := &material{raw: raw, pool: x509.NewCertPool()}
		if !m.pool.AppendCertsFromPEM(raw[2]) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", id.cfg.Name, id.cfg.CAFile)
		}
		return m, nil
	}
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return nil, fmt.Errorf("%s: %s and %s: %w", id.cfg.Name, id.cfg.CertFile, id.cfg.KeyFile, err)
	}
	m := &material{raw: raw, cert: &cert}
	if id.cfg.CAFile != "" {
		m.pool = x509.NewCertPool()
		if !m.pool.AppendCertsFromPEM(raw[2]) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", id.cfg.Name, id.cfg.CAFile)
		}
	}
	if id.cfg.Node {
		if err := verifyNode(cert.Leaf, cert.Certificate[1:], m.pool); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", id.cfg.Name, id.cfg.CertFile, err)
		}
	} else if time.Now().After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("%s: %s expired on %s", id.cfg.Name, id.cfg.CertFile, cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	return m, nil
}

// errNotNode says a certificate cannot serve as a node's.
var errNotNode = errors.New("not a node certificate: it must allow both server and client authentication (switchboard certs create-node makes one)")

// verifyNode checks that leaf chains to roots and may authenticate both
// ends of a connection between nodes.
func verifyNode(leaf *x509.Certificate, chain [][]byte, roots *x509.CertPool) error {
	if !isNodeCert(leaf) {
		return errNotNode
	}
	inter := x509.NewCertPool()
	for _, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		inter.AddCert(c)
	}
	for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{use}}); err != nil {
			return fmt.Errorf("not valid under the CA file: %w", err)
		}
	}
	return nil
}

// isNodeCert reports whether a certificate allows both server and client
// authentication: a client certificate (client authentication only) from
// the same CA does not open the cluster's ports.
func isNodeCert(c *x509.Certificate) bool {
	has := func(u x509.ExtKeyUsage) bool {
		return slices.Contains(c.ExtKeyUsage, u) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
	}
	return has(x509.ExtKeyUsageServerAuth) && has(x509.ExtKeyUsageClientAuth)
}

// expiryWarning is how close to its end a certificate is warned about.
const expiryWarning = 30 * 24 * time.Hour

// logLoaded logs what of m is new since prev (nil: all of it).
func (id *Identity) logLoaded(prev, m *material, what string) {
	if r := m.revoked; r != nil && changed(prev, m, 3) {
		id.log.Info(what+" the revocation lists", "crl_file", id.cfg.CRLFile, "lists", r.lists, "revoked", len(r.serials),
			"next_update", r.nextUpdate.UTC().Format(time.RFC3339))
		if !r.nextUpdate.IsZero() && time.Now().After(r.nextUpdate) {
			id.log.Warn("a revocation list is past its next update: it still applies; re-sign it (switchboard certs revoke)", "crl_file", id.cfg.CRLFile)
		}
	}
	if !changed(prev, m, 0) && !changed(prev, m, 1) && !changed(prev, m, 2) {
		return // only the revocation lists changed
	}
	if m.cert == nil {
		id.log.Info(what+" the CA bundle", "ca_file", id.cfg.CAFile)
		return
	}
	leaf := m.cert.Leaf
	attrs := []any{"subject", leaf.Subject.String(), "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
	if m.pool != nil {
		attrs = append(attrs, "ca_file", id.cfg.CAFile)
	}
	id.log.Info(what+" the certificate", attrs...)
	if left := time.Until(leaf.NotAfter); left < expiryWarning {
		id.log.Warn("the certificate expires soon: replace the files (they are re-read without a restart)", "not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "left", left.Round(time.Minute))
	}
}

// changed reports whether file i (certificate, key, CA, CRL) of m differs
// from prev's (nil: all of m is new).
func changed(prev, m *material, i int) bool {
	return prev == nil || !bytes.Equal(prev.raw[i], m.raw[i])
}

// equalRaw reports whether two raw contents are the same bytes.
func equalRaw(a, b [4][]byte) bool {
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
