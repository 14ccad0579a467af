package security

import (
	"os"
	"path/filepath"
	"testing"
)

// listenIdentity is a client listener's identity (--tls-cert, and
// --tls-client-ca when clientCA is set).
func listenIdentity(t *testing.T, pair PEMPair, clientCA []byte) *Identity {
	t.Helper()
	cfg := writeFiles(t, t.TempDir(), pair, clientCA)
	cfg.Node = false
	if clientCA == nil {
		cfg.CAFile = ""
	}
	id, err := LoadIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// caBundle writes a CA bundle and loads it as LoadCAs does.
func caBundle(t *testing.T, pem []byte) (*Identity, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "peer-ca.crt")
	if err := os.WriteFile(file, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := LoadCAs(file, "peer CA", nil)
	if err != nil {
		t.Fatal(err)
	}
	return id, file
}

// TestPeerTLSTrust: forwarding trusts a peer's listener certificate when
// it chains to the cluster CA or to the peer CA bundle and names the host
// dialled, and nothing else; a peer CA bundle replaced on disk is trusted
// from the next dial on.
func TestPeerTLSTrust(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	addr := serve(t, listenIdentity(t, p.node, nil).ServerConfig("http/1.1"))
	cluster, _ := identity(t, p.node, p.ca.Cert)
	otherCluster, _ := identity(t, other.node, other.ca.Cert)
	bundle, caFile := caBundle(t, other.ca.Cert)
	viaBundle := NewPeerTLS(nil, nil, bundle, nil)
	for name, c := range map[string]struct {
		trust *PeerTLS
		host  string
		ok    bool
	}{
		"the cluster CA":                 {NewPeerTLS(cluster, nil, nil, nil), "127.0.0.1", true},
		"the cluster CA, another host":   {NewPeerTLS(cluster, nil, nil, nil), "node.example.com", false},
		"another cluster's CA":           {NewPeerTLS(otherCluster, nil, nil, nil), "127.0.0.1", false},
		"the system's roots alone":       {NewPeerTLS(nil, nil, nil, nil), "127.0.0.1", false},
		"a peer CA bundle of another CA": {viaBundle, "127.0.0.1", false},
	} {
		if _, err := handshake(addr, c.trust.ClientConfig(c.host)); (err == nil) != c.ok {
			t.Errorf("%s: handshake error %v, want success %v", name, err, c.ok)
		}
	}
	if err := os.WriteFile(caFile, append(append([]byte{}, other.ca.Cert...), p.ca.Cert...), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := bundle.Reload(); !changed || err != nil {
		t.Fatalf("peer CA bundle: %v %v", changed, err)
	}
	if _, err := handshake(addr, viaBundle.ClientConfig("127.0.0.1")); err != nil {
		t.Fatalf("a peer of a CA added to the bundle was refused: %v", err)
	}
	if _, err := LoadCAs(filepath.Join(t.TempDir(), "none"), "peer CA", nil); err == nil {
		t.Error("a missing CA bundle loaded")
	}
}

// TestPeerTLSClientCertificate: to a peer that asks for a client
// certificate, forwarding presents the node certificate when the peer
// accepts its CA, else the listener's certificate when the peer accepts
// that one, else none, and the peer refuses the handshake.
func TestPeerTLSClientCertificate(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	addr := serve(t, listenIdentity(t, p.node, p.ca.Cert).ServerConfig())
	nodeOfP, _ := identity(t, p.node, p.ca.Cert)
	nodeOfOther, _ := identity(t, other.node, other.ca.Cert)
	listenOfP := listenIdentity(t, p.node, nil)
	trustP, _ := caBundle(t, p.ca.Cert)
	for name, c := range map[string]struct {
		trust *PeerTLS
		ok    bool
	}{
		"the node certificate":                       {NewPeerTLS(nodeOfP, nil, nil, nil), true},
		"the listener's, the node's CA not accepted": {NewPeerTLS(nodeOfOther, listenOfP, trustP, nil), true},
		"none the peer accepts":                      {NewPeerTLS(nodeOfOther, nil, trustP, nil), false},
	} {
		if _, err := handshake(addr, c.trust.ClientConfig("127.0.0.1")); (err == nil) != c.ok {
			t.Errorf("%s: handshake error %v, want success %v", name, err, c.ok)
		}
	}
}
