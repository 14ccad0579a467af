package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestLagOfProcesses: three node processes with --fault-injection; the
// links between n1, which leads a channel's shard, and the others are
// slowed both ways through /v1/cluster/lag. A send through n2's gateway
// then takes at least the lag's round trips, senders on every gateway go
// on and a watcher on each side gets every message once and in order,
// and the lag ends when told.
func TestLagOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const key = "lag-test-key"
	names := []string{"n1", "n2", "n3"}
	c := newFaultCluster(t, key, names...)
	lag := func(method, on, query string) (int, string) {
		return c.faultCall(method, on, "/v1/cluster/lag", query, key)
	}
	set := func(method, on, query string) {
		t.Helper()
		if st, body := lag(method, on, query); st != http.StatusOK {
			t.Fatalf("%s %s lag %s: %d %s", method, on, query, st, body)
		}
	}
	// Bad input changes nothing.
	for _, q := range []string{"nodes=n2", "nodes=n2&delay=fast", "nodes=n2&delay=-1s", "nodes=n2&delay=1h",
		"nodes=n2&delay=10ms&loss=1", "nodes=n2&delay=10ms&loss=x", "nodes=n2&delay=10ms&jitter=x",
		"delay=10ms", "nodes=n2,nobody&delay=10ms", "nodes=n1&delay=10ms"} {
		if st, body := lag("PUT", "n1", q); st != http.StatusBadRequest {
			t.Fatalf("PUT lag?%s: %d %s", q, st, body)
		}
	}
	if st, body := operatorDo(t, "PUT", c.procs["n1"].base()+"/v1/cluster/lag?nodes=n2&delay=10ms", ""); st != http.StatusUnauthorized {
		t.Fatalf("lag without the key: %d %s", st, body)
	}
	if st, body := lag("GET", "n1", ""); st != http.StatusOK || body != "{\"lag\":[]}\n" {
		t.Fatalf("after refused lags: %d %s", st, body)
	}

	ch := channelOwnedBy("lag", "n1", names...)
	waitFor(t, 30*time.Second, "n1 to lead "+ch, func() bool {
		l, err := c.locate("n2", ch)
		return err == nil && l.Leader == "n1"
	})
	admin := adminClient(t, c.urls("n2"))
	if _, _, err := admin.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	watchers := []*watcher{startWatcher(t, c.urls("n1"), []string{ch}), startWatcher(t, c.urls("n3"), []string{ch})}
	tr := startTrafficOn(t, func(i int) []string { return c.urls(names[i]) }, []string{ch}, 3)
	tr.waitMore(t, 20, 20*time.Second)

	const delay = 150 * time.Millisecond
	query := fmt.Sprintf("delay=%s&jitter=30ms&loss=0.05&nodes=", delay)
	set("PUT", "n1", query+"n2,n3")
	set("PUT", "n2", query+"n1")
	set("PUT", "n3", query+"n1")
	if st, body := lag("GET", "n1", ""); st != http.StatusOK ||
		body != "{\"lag\":[{\"node\":\"n2\",\"delay_ms\":150,\"jitter_ms\":30,\"loss\":0.05},{\"node\":\"n3\",\"delay_ms\":150,\"jitter_ms\":30,\"loss\":0.05}]}\n" {
		t.Fatalf("n1's lags: %d %s", st, body)
	}
	fams := procMetrics(t, c.httpClient(), c.procs["n1"].base())
	if lagged, cut := metric(fams, "switchboard_fault_injected", "lag"), metric(fams, "switchboard_fault_injected", "partition"); lagged != 1 || cut != 0 {
		t.Fatalf("n1's switchboard_fault_injected: lag %v, partition %v; want 1, 0", lagged, cut)
	}
	// n2's gateway forwards the send to n1 and n1 replicates it to n2 or
	// n3 before it answers: the link is crossed at least twice (wherever
	// the shard's leader is, a send through n2 crosses a slowed link to n1
	// or waits for n1's vote or log).
	for i := range 3 {
		start := time.Now()
		if _, err := admin.Send(ctxT(t), protocol.SendArgs{Channel: ch, ClientID: fmt.Sprintf("lagged-%d", i), Text: "slow"}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 2*delay {
			t.Fatalf("a send across the slowed links took %s, want at least %s", took, 2*delay)
		}
	}
	tr.waitMore(t, 20, 60*time.Second)

	for _, n := range names {
		set("DELETE", n, "")
	}
	if st, body := lag("GET", "n2", ""); st != http.StatusOK || body != "{\"lag\":[]}\n" {
		t.Fatalf("after DELETE: %d %s", st, body)
	}
	tr.waitMore(t, 20, 20*time.Second)
	tr.stop()
	tr.verify(t, admin)
	for _, w := range watchers {
		w.verify(t, tr)
	}
	c.waitAlive(3)
}
