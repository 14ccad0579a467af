package main

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/security"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestRevokedNodeCertificateIsCutOff: a node started with
// --cluster-tls-crl takes a second node certificate of its CA on the
// transport; once `switchboard certs revoke` names that certificate, the
// node re-reads the list, cuts the stream open with it and refuses it
// at the next handshake, while its own certificate goes on working.
func TestRevokedNodeCertificateIsCutOff(t *testing.T) {
	pki := makePKI(t)
	t.Parallel()
	other := t.TempDir() // a second node certificate of the same CA
	ca, err := os.ReadFile(pki.ca)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	cli(t, "certs", "create-node", "--certs-dir", other, "--ca-key", pki.caKey, "--host", "127.0.0.1")
	crl := filepath.Join(pki.dir, "ca.crl")
	if out := cli(t, "certs", "revoke", "--certs-dir", pki.dir); !strings.Contains(out, "wrote "+crl) {
		t.Fatalf("an empty list: %s", out)
	}
	p := startProc(t, append([]string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(),
		"--cluster-key", security.NewKey(), "--cluster-name", "test-" + t.Name(), "--cluster-tls-crl", crl}, pki.clusterTLS()...)...)
	ctx := ctxT(t)
	alice := procDial(t, p.url(), "alice")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "vault", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	addr := remoteAddr(t, http.DefaultClient, p)
	send := func(text string) *clusterpb.Request {
		args, _ := json.Marshal(protocol.SendArgs{Channel: "vault", Text: text, ClientID: text})
		return &clusterpb.Request{Kind: clusterpb.Kind_KIND_CHANNEL, Target: "vault", Op: protocol.OpMessageSend, Args: args,
			Caller: &clusterpb.Caller{User: "alice"}}
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(other, "node.crt"), filepath.Join(other, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	creds := func() credentials.TransportCredentials {
		return credentials.NewTLS(tls13{RootCAs: pki.pool(t), Cert: &cert}.config())
	}
	open := forge(t, addr, creds(), send("before"))
	nextEvent(t, alice, protocol.EventMessageNew)

	cli(t, "certs", "revoke", "--certs-dir", pki.dir, "--cert", filepath.Join(other, "node.crt"))
	start := time.Now()
	err = open.refused(t) // the stream ends within the reload interval, not at its deadline
	t.Logf("the revoked certificate's stream ended after %v: %v", time.Since(start).Round(time.Millisecond), err)
	waitFor(t, 10*time.Second, "the revoked certificate refused at the handshake", func() bool {
		return forge(t, addr, creds(), send("after")).refused(t) != nil
	})
	mine := pki.nodeCert(t)
	forge(t, addr, credentials.NewTLS(tls13{RootCAs: pki.pool(t), Cert: &mine}.config()), send("still-trusted"))
	nextEvent(t, alice, protocol.EventMessageNew)
	var texts []string
	for _, m := range allMessages(t, alice, "vault") {
		texts = append(texts, m.Text)
	}
	if strings.Join(texts, ",") != "before,still-trusted" {
		t.Fatalf("messages: %v", texts)
	}
	log := readFile(p.logf)
	if !strings.Contains(log, "cutting a connection: the peer's certificate is now revoked") || !strings.Contains(log, "revoked") {
		t.Errorf("the cut was not logged:\n%s", log)
	}
}
