package security

import (
	"context"
	"crypto/tls"
	"errors"
	"net"

	"google.golang.org/grpc/credentials"
)

func (id *Identity) minVersion() uint16 {
	if id.cfg.Node {
		return tls.VersionTLS13 // every peer is one of our nodes
	}
	return tls.VersionTLS12 // browsers and proxies
}

// ServerConfig returns a configuration for a listener that presents the
// certificate in use at each handshake. With a CA file, the client must
// present a certificate that chains to it (for a node identity, a node
// certificate) and that the CRL file does not revoke: a peer without one
// is refused at the handshake.
func (id *Identity) ServerConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: id.minVersion(),
		NextProtos: nextProtos,
		// The configuration is made per handshake, so a reloaded
		// certificate and CA take effect on the next connection.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := id.cur.Load()
			c := &tls.Config{MinVersion: id.minVersion(), NextProtos: nextProtos, Certificates: []tls.Certificate{*m.cert}}
			if m.pool != nil {
				c.ClientCAs = m.pool
				c.ClientAuth = tls.RequireAndVerifyClientCert
				c.VerifyConnection = id.verifyPeer(m)
			}
			return c, nil
		},
	}
}

// ClientConfig returns a configuration for dialing serverName (a host name
// or IP address; empty lets gRPC fill in the dialled host): it presents
// the certificate in use and verifies the server's against the CA file
// (for a node identity, the server must present a node certificate).
// Build one per dial, so reloaded files take effect.
func (id *Identity) ClientConfig(serverName string) *tls.Config {
	m := id.cur.Load()
	c := &tls.Config{MinVersion: id.minVersion(), ServerName: serverName, RootCAs: m.pool, Certificates: []tls.Certificate{*m.cert},
		VerifyConnection: id.verifyPeer(m)}
	return c
}

// requireNodePeer refuses a peer whose (already verified) certificate is
// not a node certificate.
func requireNodePeer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 || !isNodeCert(cs.PeerCertificates[0]) {
		return errPeerNotNode
	}
	return nil
}

var errPeerNotNode = errors.New("the peer's certificate is not a node certificate (it must allow both server and client authentication)")

// TransportCredentials returns gRPC credentials for mutual TLS between
// nodes: both sides present the identity's certificate and verify the
// other's against the CA, as in use at each handshake. refused, when set,
// is told of every connection refused at the server's handshake.
func (id *Identity) TransportCredentials(refused func(addr net.Addr, err error)) credentials.TransportCredentials {
	return &transportCreds{id: id, server: credentials.NewTLS(id.ServerConfig("h2")), refused: refused}
}

// transportCreds builds gRPC's TLS credentials per handshake on the client
// side (the CA pool may have been reloaded since the last dial) and
// reports refusals on the server side.
type transportCreds struct {
	id      *Identity
	server  credentials.TransportCredentials
	refused func(net.Addr, error)
}

func (t *transportCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	// An empty ServerName makes gRPC verify the host it dialled.
	conn, info, err := credentials.NewTLS(t.id.ClientConfig("")).ClientHandshake(ctx, authority, raw)
	return t.track(conn, info), info, err
}

func (t *transportCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := t.server.ServerHandshake(raw)
	if err != nil && t.refused != nil {
		t.refused(raw.RemoteAddr(), err)
	}
	return t.track(conn, info), info, err
}

// track has the identity cut conn should its peer's certificate be
// revoked later.
func (t *transportCreds) track(conn net.Conn, info credentials.AuthInfo) net.Conn {
	if tlsInfo, ok := info.(credentials.TLSInfo); ok && conn != nil {
		return t.id.TrackConn(conn, tlsInfo.State.PeerCertificates)
	}
	return conn
}

func (t *transportCreds) Info() credentials.ProtocolInfo { return t.server.Info() }

func (t *transportCreds) Clone() credentials.TransportCredentials {
	c := *t
	c.server = t.server.Clone()
	return &c
}

// OverrideServerName is deprecated in gRPC and unused: the dialled host is
// what is verified.
func (t *transportCreds) OverrideServerName(string) error { return nil }
