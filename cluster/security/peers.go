package security

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"slices"
	"sync"
)

// PeerTLS is what a node trusts, and presents, when it dials another
// node's client listener (--listen) to forward a request there: a file
// download to the node that holds the file, an operator request to the
// node it names. Forwarded requests carry the caller's credentials, so the
// peer is verified as a browser would verify the node:
//
//   - its certificate must chain to the system's roots, to the cluster CA
//     (--cluster-tls-ca) or to the peer CA bundle (--tls-peer-ca), and
//     name the host dialled;
//   - when the peer asks for a client certificate (--tls-client-ca), the
//     node presents its node certificate (--cluster-tls-cert), or else
//     its --tls-cert if that allows client authentication: whichever was
//     issued by a CA the peer names as acceptable.
//
// Every file is read as it is at the handshake, reloads included.
type PeerTLS struct {
	system *x509.CertPool // nil when the system has none
	// cluster and listen are the node's identities (either may be nil);
	// extra is the --tls-peer-ca bundle (nil: none).
	cluster, listen, extra *Identity

	// mu guards cached: the roots built from the CA files last seen.
	mu     sync.Mutex
	cached peerRoots
}

// peerRoots is a pool of roots and the CA material it was built from.
type peerRoots struct {
	from [2]*material
	pool *x509.CertPool
}

// NewPeerTLS builds the trust for forwarding: cluster is the node
// identity of the actor transport, listen the client listener's, extra a
// CA-only identity (LoadCAs); any may be nil.
func NewPeerTLS(cluster, listen, extra *Identity, log *slog.Logger) *PeerTLS {
	system, err := x509.SystemCertPool()
	if err != nil && log != nil {
		log.Warn("no system certificate roots: other nodes' --tls-cert must chain to --cluster-tls-ca or --tls-peer-ca", "err", err)
	}
	return &PeerTLS{system: system, cluster: cluster, listen: listen, extra: extra}
}

// ClientConfig returns a configuration for dialing a peer's client
// listener at host serverName (an IP address or a DNS name, as the peer
// gossips it). Build one per dial, so reloaded files take effect.
func (p *PeerTLS) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		ServerName:           serverName,
		RootCAs:              p.roots(),
		NextProtos:           []string{"http/1.1"},
		GetClientCertificate: p.clientCertificate,
	}
}

// roots returns the system's roots with the cluster CA and the peer CA
// bundle added, rebuilt when either file was reloaded.
func (p *PeerTLS) roots() *x509.CertPool {
	var from [2]*material
	for i, id := range []*Identity{p.cluster, p.extra} {
		if id != nil {
			from[i] = id.cur.Load()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cached.pool != nil && p.cached.from == from {
		return p.cached.pool
	}
	pool := x509.NewCertPool()
	if p.system != nil {
		pool = p.system.Clone()
	}
	for _, m := range from {
		if m != nil {
			pool.AppendCertsFromPEM(m.raw[2])
		}
	}
	p.cached = peerRoots{from: from, pool: pool}
	return pool
}

// clientCertificate picks the certificate to present to a peer that asks
// for one: the first of the node's that allows client authentication and
// comes from a CA the peer accepts. None (an empty certificate) lets the
// peer refuse the handshake, and the forwarding fails with its reason.
func (p *PeerTLS) clientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	for _, id := range []*Identity{p.cluster, p.listen} {
		if id == nil {
			continue
		}
		c := id.cur.Load().cert
		if c == nil || !allowsClientAuth(c.Leaf) {
			continue
		}
		if cri.SupportsCertificate(c) == nil {
			return c, nil
		}
	}
	return &tls.Certificate{}, nil
}

func allowsClientAuth(c *x509.Certificate) bool {
	return len(c.ExtKeyUsage) == 0 || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}
