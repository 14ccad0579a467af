package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// operatorDo sends an operator API request with key (none when empty)
// and returns the status and body.
func operatorDo(t *testing.T, method, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Close = true // no idle connection outlives the test
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDrainEndpointNeedsAKeyConfigured: draining changes the cluster, so
// it needs an operator key even on a node whose read-only endpoints are
// open: without --api-key it answers 403, saying to set one.
func TestDrainEndpointNeedsAKeyConfigured(t *testing.T) {
	if !inOwnProcess(t) { // one node per process: nodes set gRPC's global logger (see inOwnProcess)
		return
	}
	open := testNode(t)
	st, body := operatorDo(t, "POST", "http://"+open.Addr()+"/v1/cluster/drain", "")
	if st != http.StatusForbidden || !strings.Contains(body, "--api-key") || !strings.Contains(body, `"forbidden"`) {
		t.Fatalf("no key configured: %d %s", st, body)
	}
	if st, _ := operatorDo(t, "GET", "http://"+open.Addr()+"/v1/cluster/metrics", ""); st != http.StatusOK {
		t.Fatalf("the metrics of a node without a key are open like /metrics: %d", st)
	}
}

// TestDrainEndpointRefusesWrongKeys: 401 without the key or with another
// one; the metrics endpoint needs the key too once the node has one.
func TestDrainEndpointRefusesWrongKeys(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	keyed := testNode(t, func(c *Config) { c.APIKey = "k-old,k-123" })
	base := "http://" + keyed.Addr()
	for _, key := range []string{"", "wrong"} {
		if st, body := operatorDo(t, "POST", base+"/v1/cluster/drain", key); st != http.StatusUnauthorized || !strings.Contains(body, `"unauthenticated"`) {
			t.Fatalf("key %q: %d %s", key, st, body)
		}
	}
	if st, body := operatorDo(t, "POST", base+"/v1/cluster/drain?node=nobody", "k-123"); st != http.StatusNotFound {
		t.Fatalf("unknown node: %d %s", st, body)
	}
	if st, _ := operatorDo(t, "GET", base+"/v1/cluster/metrics", ""); st != http.StatusUnauthorized {
		t.Fatalf("metrics without the key: %d", st)
	}
	if st, body := operatorDo(t, "GET", base+"/v1/cluster/metrics?node="+keyed.Cluster().Name(), "k-old"); st != http.StatusOK || !strings.Contains(body, "switchboard_sessions_open") {
		t.Fatalf("metrics with either key: %d %.200s", st, body)
	}
}

// TestDrainEndpointDrainsThisNode: a drain of the node asked answers 202,
// and the node drains and stops serving (Run returns, as after SIGTERM).
func TestDrainEndpointDrainsThisNode(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	n := testNode(t, func(c *Config) { c.APIKey, c.DrainTimeout = "k", 10*time.Second })
	st, body := operatorDo(t, "POST", "http://"+n.Addr()+"/v1/cluster/drain?node="+n.Cluster().Name(), "k")
	var res struct {
		Node     string `json:"node"`
		Draining bool   `json:"draining"`
	}
	if st != http.StatusAccepted || json.Unmarshal([]byte(body), &res) != nil || !res.Draining || res.Node != n.Cluster().Name() {
		t.Fatalf("drain: %d %s", st, body)
	}
	waitFor(t, 15*time.Second, "the drained node to stop serving", func() bool {
		resp, err := http.Get("http://" + n.Addr() + "/healthz")
		if err != nil {
			return true
		}
		resp.Body.Close()
		return false
	})
}

// TestDrainEndpointReachesAnotherNode: asked of n1, a drain of n2 is
// forwarded to n2 (which checks the key itself); n2 hands its channels to
// n1, leaves and exits 0, and nothing it held is lost. n1 also serves
// n2's metrics for the console.
func TestDrainEndpointReachesAnotherNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const key = "drain-key"
	c := &testCluster{t: t, procs: map[string]*proc{}, dirs: map[string]string{}}
	c.start("n1", "--api-key", key)
	c.start("n2", "--api-key", key)
	n1 := "http://" + c.procs["n1"].addr
	waitFor(t, 20*time.Second, "two alive members", func() bool {
		st, body := operatorDo(t, "GET", n1+"/v1/cluster", key)
		return st == http.StatusOK && strings.Count(body, `"state":"alive"`) == 2
	})
	ctx := ctxT(t)
	ch := channelOwnedBy("drain-api-", "n2", "n1", "n2")
	cl := clusterClient(t, c.urls("n1"), "op")
	if _, _, err := cl.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := cl.Send(ctx, protocol.SendArgs{Channel: ch, ClientID: fmt.Sprint("d-", i), Text: fmt.Sprint("before the drain ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if st, body := operatorDo(t, "GET", n1+"/v1/cluster/metrics?node=n2", key); st != http.StatusOK || !strings.Contains(body, "switchboard_deliveries_total") {
		t.Fatalf("n2's metrics through n1: %d %.200s", st, body)
	}
	if st, body := operatorDo(t, "POST", n1+"/v1/cluster/drain?node=n2", "not-the-key"); st != http.StatusUnauthorized {
		t.Fatalf("a wrong key forwarded: %d %s", st, body)
	}
	if st, body := operatorDo(t, "POST", n1+"/v1/cluster/drain?node=n2", key); st != http.StatusAccepted || !strings.Contains(body, `"node":"n2"`) {
		t.Fatalf("drain n2 through n1: %d %s", st, body)
	}
	select {
	case err := <-c.procs["n2"].done:
		if err != nil {
			t.Fatalf("n2 exited with %v after its drain\n%s", err, readFile(c.procs["n2"].logf))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("n2 did not exit after the drain\n%s", readFile(c.procs["n2"].logf))
	}
	waitFor(t, 10*time.Second, "n1 to see n2 leave", func() bool {
		_, body := operatorDo(t, "GET", n1+"/v1/cluster", key)
		return strings.Contains(body, `"name":"n2"`) && strings.Count(body, `"state":"left"`) == 1
	})
	h, err := cl.History(ctx, protocol.HistoryArgs{Channel: ch})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 3 {
		t.Fatalf("after the drain %s holds %d messages, want 3", ch, len(h.Messages))
	}
}
