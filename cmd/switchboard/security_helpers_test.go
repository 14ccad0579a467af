package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// pkiFiles is a test CA and the certificates it signed, made by the
// binary's certs commands as an operator would.
type pkiFiles struct {
	dir                                         string
	ca, caKey, node, nodeKey, client, clientKey string
}

// cli runs the binary with args and returns its output; it must succeed.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func makePKI(t *testing.T) pkiFiles {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	cli(t, "certs", "create-ca", "--certs-dir", dir)
	cli(t, "certs", "create-node", "--certs-dir", dir, "--host", "127.0.0.1,localhost")
	cli(t, "certs", "create-client", "--certs-dir", dir)
	f := func(n string) string { return filepath.Join(dir, n) }
	return pkiFiles{dir: dir, ca: f("ca.crt"), caKey: f("ca.key"), node: f("node.crt"), nodeKey: f("node.key"),
		client: f("client.crt"), clientKey: f("client.key")}
}

// clusterTLS are the flags of mutual TLS between nodes.
func (p pkiFiles) clusterTLS() []string {
	return []string{"--cluster-tls-ca", p.ca, "--cluster-tls-cert", p.node, "--cluster-tls-key", p.nodeKey}
}

// listenTLS are the flags that serve --listen over TLS.
func (p pkiFiles) listenTLS() []string { return []string{"--tls-cert", p.node, "--tls-key", p.nodeKey} }

// tlsConfig trusts the CA (and presents the client certificate when
// withCert).
func (p pkiFiles) tlsConfig(t *testing.T, withCert bool) *tls.Config {
	t.Helper()
	var cert, key string
	if withCert {
		cert, key = p.client, p.clientKey
	}
	cfg, err := client.LoadTLS(p.ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// httpClient speaks HTTP/2 (or 1.1) to nodes serving the CA's
// certificates.
func (p pkiFiles) httpClient(t *testing.T) *http.Client {
	tr := &http.Transport{TLSClientConfig: p.tlsConfig(t, false), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// nodeCert is the CA's node certificate, for dialing the transport.
func (p pkiFiles) nodeCert(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(p.node, p.nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p pkiFiles) pool(t *testing.T) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(p.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return pool
}

// metric returns one value of a metric family scraped from a node: the
// sample whose first label has value label ("" for none).
func metric(fams map[string]*dto.MetricFamily, name, label string) float64 {
	for _, m := range fams[name].GetMetric() {
		if ls := m.GetLabel(); (len(ls) == 0 && label == "") || (len(ls) > 0 && ls[0].GetValue() == label) {
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// remoteAddr is a node's actor-transport address, from /v1/cluster.
func remoteAddr(t *testing.T, hc *http.Client, p *proc) string {
	t.Helper()
	resp, err := hc.Get(p.base() + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Members []struct {
			Remote string `json:"remote"`
			Self   bool   `json:"self"`
		} `json:"members"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	for _, m := range v.Members {
		if m.Self {
			return m.Remote
		}
	}
	t.Fatal("no self in /v1/cluster")
	return ""
}

// forged is a connection to a node's actor transport that speaks
// protoactor's wire protocol as a stranger would, carrying one request
// envelope straight to the node's host actor.
type forged struct {
	conn   *grpc.ClientConn
	stream remote.Remoting_ReceiveClient
	err    error // why the stream did not open
	cancel context.CancelFunc
}

// forge dials addr with creds and sends req to its host actor.
func forge(t *testing.T, addr string, creds credentials.TransportCredentials, req *clusterpb.Request) *forged {
	t.Helper()
	data, typeName, err := remote.Serialize(clusterpb.Wrap(&clusterpb.Envelope_Request{Request: req}), 0)
	if err != nil {
		t.Fatal(err)
	}
	return forgeBatch(t, addr, creds, typeName, data)
}

// forgeBatch dials addr with creds and sends one message, of type
// typeName, to its host actor.
func forgeBatch(t *testing.T, addr string, creds credentials.TransportCredentials, typeName string, data []byte) *forged {
	t.Helper()
	conn, err := grpc.Dial(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	f := &forged{conn: conn, cancel: cancel}
	t.Cleanup(f.close)
	if f.stream, f.err = remote.NewRemotingClient(conn).Receive(ctx); f.err != nil {
		return f // refused before a stream opened
	}
	f.err = f.stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
		TypeNames: []string{typeName},
		Targets:   []*actor.PID{actor.NewPID(addr, cluster.HostName)},
		Envelopes: []*remote.MessageEnvelope{{MessageData: data}},
	}}})
	return f
}

// refused waits for the connection to end and returns why (a node never
// answers a batch: an accepted connection stays open until the test's
// deadline, and refused then fails).
func (f *forged) refused(t *testing.T) error {
	t.Helper()
	if f.err != nil {
		return f.err
	}
	_, err := f.stream.Recv()
	if err == nil || strings.Contains(err.Error(), "DeadlineExceeded") {
		t.Fatalf("the connection stayed open: %v", err)
	}
	return err
}

func (f *forged) close() {
	f.cancel()
	f.conn.Close()
}

// tls13 is a TLS 1.3 client configuration trusting RootCAs and presenting
// Cert (nil: none).
type tls13 struct {
	RootCAs *x509.CertPool
	Cert    *tls.Certificate
}

func (c tls13) config() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: c.RootCAs}
	if c.Cert != nil {
		cfg.Certificates = []tls.Certificate{*c.Cert}
	}
	return cfg
}

// tlsDial completes a TLS handshake with a loopback address.
func tlsDial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = "127.0.0.1"
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
}
