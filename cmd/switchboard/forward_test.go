package main

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchboard-chat/switchboard/cluster/security"
)

// Requests one node forwards to another (peerhttp): file downloads to the
// node holding the file, drain and metrics to the node named.

// certClient is an HTTP client that trusts the test CA and presents its
// client certificate, for nodes that ask for one (--tls-client-ca).
func certClient(t *testing.T, pki pkiFiles) *http.Client {
	tr := &http.Transport{TLSClientConfig: pki.tlsConfig(t, true)}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// waitAliveWith waits until the operator endpoints at each base show n
// alive members.
func waitAliveWith(t *testing.T, hc *http.Client, key string, n int, bases ...string) {
	t.Helper()
	for _, b := range bases {
		waitFor(t, 20*time.Second, "alive members at "+b, func() bool {
			st, body := operatorDoWith(t, hc, "GET", b+"/v1/cluster", key)
			return st == http.StatusOK && strings.Count(body, `"state":"alive"`) == n
		})
	}
}

// TestForwardingOverTLS: in a cluster whose nodes serve --listen over TLS
// and ask their clients for certificates, a file uploaded on n1 downloads
// through n2, and n1 forwards n2's metrics and a drain of n2 to n2. Each
// forward dials https:// (the peer gossips that it serves TLS), verifies
// the peer's certificate under the cluster CA and presents the node
// certificate, which the peer's --tls-client-ca accepts.
func TestForwardingOverTLS(t *testing.T) {
	pki := makePKI(t)
	t.Parallel()
	const key = "forward-key"
	secure := append(append([]string{"--cluster-key", security.NewKey(), "--api-key", key, "--tls-client-ca", pki.ca},
		pki.clusterTLS()...), pki.listenTLS()...)
	hc := certClient(t, pki)
	c := &testCluster{t: t, procs: map[string]*proc{}, dirs: map[string]string{}, hc: hc}
	n1, n2 := c.start("n1", secure...), c.start("n2", secure...)
	waitAliveWith(t, hc, key, 2, n1.base(), n2.base())
	if _, body := operatorDoWith(t, hc, "GET", n1.base()+"/v1/cluster", key); strings.Count(body, `"http_tls":true`) != 2 {
		t.Fatalf("the members do not say they serve TLS: %s", body)
	}

	st, up := uploadTo(t, hc, n1.base(), "Dev alice", "cat.png", "image/png", png)
	f := uploadedFile(t, st, up)
	status, hdr, body := downloadFrom(t, hc, n2.base(), "Dev alice", f.URL)
	if status != http.StatusOK || !bytes.Equal(body, png) || hdr.Get("Content-Type") != "image/png" {
		t.Fatalf("a file of n1 through n2: %d %v %q\n%s", status, hdr, body, readFile(n2.logf))
	}

	if st, body := operatorDoWith(t, hc, "GET", n1.base()+"/v1/cluster/metrics?node=n2", key); st != http.StatusOK || !strings.Contains(body, "switchboard_deliveries_total") {
		t.Fatalf("n2's metrics through n1: %d %.300s", st, body)
	}
	if st, body := operatorDoWith(t, hc, "POST", n1.base()+"/v1/cluster/drain?node=n2", key); st != http.StatusAccepted || !strings.Contains(body, `"node":"n2"`) {
		t.Fatalf("drain n2 through n1: %d %s", st, body)
	}
	select {
	case err := <-n2.done:
		if err != nil {
			t.Fatalf("n2 exited with %v after its drain\n%s", err, readFile(n2.logf))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("n2 did not exit after the drain\n%s", readFile(n2.logf))
	}
}

// TestForwardingTrustsOnlyKnownCAs: nodes without cluster TLS that serve
// --listen with certificates of a private CA. n1 does not know the CA and
// refuses to forward to n2 (503, the certificate's fault); n2 trusts it
// through --tls-peer-ca and forwards to n1, which asks for a client
// certificate: n2 presents its --tls-cert, a node certificate that allows
// client authentication.
func TestForwardingTrustsOnlyKnownCAs(t *testing.T) {
	pki := makePKI(t)
	t.Parallel()
	args := func(name string, extra ...string) []string {
		return append(append([]string{"--node-name", name, "--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0",
			"--data", t.TempDir(), "--failure-detection", "fast"}, pki.listenTLS()...), extra...)
	}
	n1 := startProc(t, args("n1", "--tls-client-ca", pki.ca)...)
	n2 := startProc(t, args("n2", "--join", n1.gossip, "--tls-peer-ca", pki.ca)...)
	hc := certClient(t, pki)
	waitAliveWith(t, hc, "", 2, n1.base(), n2.base())

	st, body := operatorDoWith(t, hc, "GET", n1.base()+"/v1/cluster/metrics?node=n2", "")
	if st != http.StatusServiceUnavailable || !strings.Contains(body, "certificate") || !strings.Contains(body, `"unavailable"`) {
		t.Fatalf("n1 forwarded to a peer whose CA it does not trust: %d %.300s", st, body)
	}
	if st, body := operatorDoWith(t, hc, "GET", n2.base()+"/v1/cluster/metrics?node=n1", ""); st != http.StatusOK || !strings.Contains(body, "switchboard_sessions_open") {
		t.Fatalf("n1's metrics through n2 (--tls-peer-ca): %d %.300s\n%s", st, body, readFile(n1.logf))
	}
}

// TestForwardingToAdminAddress: nodes that serve their operator endpoints
// on --admin-listen gossip that address, and a node asked on its own
// admin address for another's metrics fetches them from the other's admin
// address (they are not on its --listen).
func TestForwardingToAdminAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	t.Parallel()
	const key = "admin-key"
	args := func(name string, extra ...string) []string {
		return append([]string{"--node-name", name, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--api-key", key,
			"--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(), "--failure-detection", "fast"}, extra...)
	}
	n1 := startProc(t, args("n1")...)
	n2 := startProc(t, args("n2", "--join", n1.gossip)...)
	admin1, admin2 := adminURL(t, n1, "http"), adminURL(t, n2, "http")
	waitAliveWith(t, http.DefaultClient, key, 2, admin1, admin2)
	if _, body := operatorDo(t, "GET", admin1+"/v1/cluster", key); !strings.Contains(body, `"admin":"`+strings.TrimPrefix(admin2, "http://")+`"`) {
		t.Fatalf("n2's admin address is not gossiped: %s", body)
	}
	if st, _ := operatorDo(t, "GET", n2.base()+"/v1/cluster/metrics", key); st != http.StatusNotFound {
		t.Fatalf("n2 serves its operator endpoints on --listen too: %d", st)
	}

	// A session on n2 alone tells its metrics from n1's.
	procDial(t, n2.url(), "bob")
	waitFor(t, 10*time.Second, "n2's open session in the metrics n1 forwards", func() bool {
		return sessionsOpen(t, admin1+"/v1/cluster/metrics?node=n2", key) == 1
	})
	if n := sessionsOpen(t, admin1+"/v1/cluster/metrics?node=n1", key); n != 0 {
		t.Fatalf("n1 has %v sessions open, want 0", n)
	}
}

// adminURL is the base URL of p's --admin-listen, as it printed it.
func adminURL(t *testing.T, p *proc, scheme string) string {
	t.Helper()
	m := adminRE.FindStringSubmatch(p.stdout())
	if m == nil {
		t.Fatalf("no admin address in\n%s", p.stdout())
	}
	if !strings.Contains(p.stdout(), "("+scheme+"://"+m[1]+")") {
		t.Fatalf("the admin address is not announced as %s:\n%s", scheme, p.stdout())
	}
	return scheme + "://" + m[1]
}

// TestAdminAddressServesTLS: a node that serves --listen over TLS serves
// --admin-listen over TLS too, with the same certificate; plain HTTP
// gets nothing there, and another node forwards an operator request to
// it over https://.
func TestAdminAddressServesTLS(t *testing.T) {
	pki := makePKI(t)
	t.Parallel()
	const key = "admin-key"
	args := func(name string, extra ...string) []string {
		return append(append([]string{"--node-name", name, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--api-key", key,
			"--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(), "--failure-detection", "fast", "--tls-peer-ca", pki.ca},
			pki.listenTLS()...), extra...)
	}
	n1 := startProc(t, args("n1")...)
	n2 := startProc(t, args("n2", "--join", n1.gossip)...)
	hc := certClient(t, pki)
	admin1, admin2 := adminURL(t, n1, "https"), adminURL(t, n2, "https")
	waitAliveWith(t, hc, key, 2, admin1, admin2)
	if st, body := operatorDo(t, "GET", "http://"+strings.TrimPrefix(admin1, "https://")+"/metrics", key); st != http.StatusBadRequest || !strings.Contains(body, "HTTPS server") {
		t.Fatalf("plain HTTP to the admin address: %d %.200s", st, body)
	}
	if st, body := operatorDoWith(t, hc, "GET", admin1+"/v1/cluster/metrics?node=n2", key); st != http.StatusOK || !strings.Contains(body, "switchboard_sessions_open") {
		t.Fatalf("n2's metrics through n1, from n2's admin address: %d %.300s\n%s", st, body, readFile(n1.logf))
	}
}

// sessionsOpen reads switchboard_sessions_open from the metrics at url.
func sessionsOpen(t *testing.T, url, key string) float64 {
	t.Helper()
	st, body := operatorDo(t, "GET", url, key)
	if st != http.StatusOK {
		t.Fatalf("GET %s: %d %.300s", url, st, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return metric(fams, "switchboard_sessions_open", "")
}

// TestAdvertisedAddress: the address gossiped for a listener keeps the
// host the flag names, takes the transport's host for an open one, and
// the port bound.
func TestAdvertisedAddress(t *testing.T) {
	bound := &net.TCPAddr{IP: net.IPv4zero, Port: 8443}
	for _, c := range []struct{ flag, transport, want string }{
		{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:8443"},
		{"n1.chat.example.com:8443", "10.0.0.1:0", "n1.chat.example.com:8443"},
		{":8443", "10.0.0.1:0", "10.0.0.1:8443"},
		{"0.0.0.0:0", "10.0.0.1:7000", "10.0.0.1:8443"},
		{"[::]:8443", "[fd00::1]:0", "[fd00::1]:8443"},
		{":8443", "0.0.0.0:0", "0.0.0.0:8443"}, // nothing better known
	} {
		if got := advertised(c.flag, bound, c.transport); got != c.want {
			t.Errorf("advertised(%q, %v, %q) = %q, want %q", c.flag, bound, c.transport, got, c.want)
		}
	}
}
