package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestStalledDiskLeader: the disk of a channel's leader stops answering
// (its store's writes and syncs block, the fault injection's disk stall)
// while the node itself runs on. Within about two election timeouts the
// node leads nothing: sends through another gateway and through its own
// are acknowledged by the leader the other two replicas elect, long
// before the disk answers again. Once it does, every acknowledged message
// is in the history once, in order.
func TestStalledDiskLeader(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	_, nodes := memCluster(t, names...)
	ch := channelOwnedBy("stalled-disk", "n1", names...)
	awaitLeaderOfThree(t, nodes, 0, ch)
	ctx := ctxT(t)
	alice, carol := dial(t, nodes[1], "alice"), dial(t, nodes[0], "carol") // another gateway, the stalled node's
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard, Members: []string{"carol"}}); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	send := func(who string, c interface {
		Send(context.Context, protocol.SendArgs) (*protocol.Message, error)
	}, cid string) time.Duration {
		t.Helper()
		start := time.Now()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := c.Send(sctx, protocol.SendArgs{Channel: ch, ClientID: cid, Text: cid}); err != nil {
			t.Fatalf("%s's send %s: %v", who, cid, err)
		}
		acked[cid] = true
		return time.Since(start)
	}
	send("alice", alice, "before")

	store, engine := nodes[0].store, nodes[0].repl.Load().engine
	if !store.StallWrites() {
		t.Fatal("the store was stalled already")
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			store.ResumeWrites()
		}
	}
	t.Cleanup(resume) // a node whose disk never answers cannot stop
	stalled := time.Now()
	// The first write after the stall blocks: this send is what meets it.
	t.Logf("alice's send through n2: %v", send("alice", alice, "stalled-1").Round(time.Millisecond))
	waitFor(t, 10*time.Second, "n1 to say its disk is stalled", engine.Stalled)
	t.Logf("carol's send through n1: %v", send("carol", carol, "stalled-2").Round(time.Millisecond))
	t.Logf("alice's send through n2: %v", send("alice", alice, "stalled-3").Round(time.Millisecond))
	if l, _ := nodes[0].cl.LeaderOf(clusterpb.Kind_KIND_CHANNEL, ch); l == "n1" || l == "" {
		t.Errorf("n1 sees %q lead the channel while its disk is stalled; want another node", l)
	}
	if !store.WritesStalled() {
		t.Fatal("the sends outlasted the stall")
	}
	t.Logf("three sends during the stall took %v", time.Since(stalled).Round(time.Millisecond))
	resume()
	waitFor(t, 10*time.Second, "n1 to say its disk answers again", func() bool { return !engine.Stalled() })
	send("carol", carol, "after")
	checkAckedIn(t, []string{"ws://" + nodes[1].Addr() + "/v1/ws"}, ch, acked)
}

// faultEndpoint checks that a node without --fault-injection has no
// endpoint at path (404), and returns a node with it (and the operator
// key key) and the endpoint's URL.
func faultEndpoint(t *testing.T, key, path string) (*Node, string) {
	t.Helper()
	plain := testNode(t, func(c *Config) { c.APIKey = key })
	if st, body := operatorDo(t, "PUT", "http://"+plain.Addr()+path+"?delay=1s", key); st != http.StatusNotFound {
		t.Fatalf("PUT %s without --fault-injection: %d %s", path, st, body)
	}
	if fams := faultMetrics(t, plain, key); fams["switchboard_fault_injected"] != nil {
		t.Fatal("a node without --fault-injection exports switchboard_fault_injected")
	}
	n := testNode(t, func(c *Config) { c.APIKey, c.FaultInjection = key, true })
	return n, "http://" + n.Addr() + path
}

// faultMetrics scrapes n's /metrics with the operator key.
func faultMetrics(t *testing.T, n *Node, key string) map[string]*dto.MetricFamily {
	return procMetrics(t, &http.Client{Transport: keyed{key}}, "http://"+n.Addr())
}

// TestDiskStallEndpoint: /v1/cluster/disk-stall exists only with
// --fault-injection, changes nothing without the operator key, and stalls
// and releases the store's writes with it; the metrics and /readyz show
// the raft loop's stall once a write meets it.
func TestDiskStallEndpoint(t *testing.T) {
	const key = "stall-test-key"
	n, u := faultEndpoint(t, key, "/v1/cluster/disk-stall")
	if st, body := operatorDo(t, "PUT", u, ""); st != http.StatusUnauthorized || n.store.WritesStalled() {
		t.Fatalf("without the key: %d %s, stalled %v", st, body, n.store.WritesStalled())
	}
	if st, body := operatorDo(t, "PUT", u, key); st != http.StatusOK || body != "{\"stalled\":true}\n" {
		t.Fatalf("PUT: %d %s", st, body)
	}
	t.Cleanup(func() { n.store.ResumeWrites() })
	if v := metric(faultMetrics(t, n, key), "switchboard_fault_injected", "disk_stall"); v != 1 {
		t.Fatalf("switchboard_fault_injected{kind=disk_stall} %v while stalled, want 1", v)
	}
	if st, body := operatorDo(t, "GET", u, key); st != http.StatusOK || body != "{\"stalled\":true}\n" {
		t.Fatalf("GET: %d %s", st, body)
	}
	// A write meets the stall: the lone replica leads nothing meanwhile,
	// and the write is refused (unavailable) rather than left waiting.
	c := dial(t, n, "alice")
	ctx, cancel := context.WithTimeout(ctxT(t), 30*time.Second)
	defer cancel()
	_, _, err := c.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "stalled", Type: protocol.TypeStandard})
	var perr *protocol.Error
	if !errors.As(err, &perr) || perr.Code != protocol.CodeUnavailable {
		t.Fatalf("a write during the stall: %v, want unavailable", err)
	}
	if status, body := upload(t, n, "Dev alice", "a.txt", "text/plain", []byte("hello")); status != http.StatusServiceUnavailable || errCode(body) != string(protocol.CodeUnavailable) {
		t.Fatalf("an upload during the stall: %d %v, want 503 unavailable", status, body)
	}
	metric := func(name string) string {
		_, body := operatorDo(t, "GET", "http://"+n.Addr()+"/metrics", key)
		for _, l := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				return v
			}
		}
		return ""
	}
	if s, total := metric("switchboard_raft_disk_stalled"), metric("switchboard_raft_disk_stalls_total"); s != "1" || total != "1" {
		t.Fatalf("during the stall: stalled %q, stalls %q; want 1, 1", s, total)
	}
	readyz := func() (int, string) { return operatorDo(t, "GET", "http://"+n.Addr()+"/readyz", "") }
	if st, body := readyz(); st != http.StatusServiceUnavailable || !strings.Contains(body, "the disk is not answering") {
		t.Fatalf("/readyz during the stall: %d %s", st, body)
	}
	if st, body := operatorDo(t, "DELETE", u, key); st != http.StatusOK || body != "{\"stalled\":false}\n" {
		t.Fatalf("DELETE: %d %s", st, body)
	}
	waitFor(t, 10*time.Second, "the stall to end", func() bool { return metric("switchboard_raft_disk_stalled") == "0" })
	if st, body := readyz(); st != http.StatusOK {
		t.Fatalf("/readyz after the stall: %d %s", st, body)
	}
	if _, _, err := c.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "after", Type: protocol.TypeStandard}); err != nil {
		t.Fatalf("a write after the stall: %v", err)
	}
	mustUpload(t, n, "Dev alice", "a.txt", "text/plain", []byte("hello"))
}

// TestStalledDiskShutdown: a node whose disk stops answering with a raft
// write under way still stops: Close gives up on the engine after
// StorageCloseTimeout and says why, rather than wait for the disk for
// ever. Once the disk answers, the node's data opens again with what was
// acknowledged before the stall.
func TestStalledDiskShutdown(t *testing.T) {
	dir := t.TempDir()
	n := testNode(t, func(c *Config) { c.DataDir, c.StorageCloseTimeout = dir, 500*time.Millisecond })
	ctx := ctxT(t)
	c := dial(t, n, "alice")
	if _, _, err := c.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "kept", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	before, err := c.Send(ctx, protocol.SendArgs{Channel: "kept", Text: "before"})
	if err != nil {
		t.Fatal(err)
	}
	engine := n.repl.Load().engine
	n.store.StallWrites()
	sent := make(chan struct{})
	go func() { // meets the stall: its write holds the raft loop
		defer close(sent)
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, _ = c.Send(sctx, protocol.SendArgs{Channel: "kept", Text: "during"})
	}()
	waitFor(t, 10*time.Second, "the raft loop to be stalled", engine.Stalled)
	start := time.Now()
	err = n.Close()
	if err == nil || !strings.Contains(err.Error(), "the disk is not answering") {
		t.Fatalf("Close during a stall: %v, want the disk named", err)
	}
	t.Logf("Close gave up after %v", time.Since(start).Round(time.Millisecond))
	<-sent
	// The disk answers again: the engine's stop ends by itself (a second
	// Stop waits for it), and the test closes the store the node left.
	n.store.ResumeWrites()
	engine.Stop()
	if err := n.store.Close(); err != nil {
		t.Fatal(err)
	}
	again := testNode(t, func(c *Config) { c.DataDir = dir })
	msgs := allMessages(t, dial(t, again, "alice"), "kept")
	if len(msgs) == 0 || msgs[0].ID != before.ID {
		t.Fatalf("after a restart: %d messages, want the acknowledged one first", len(msgs))
	}
}

// TestSlowDiskLeaderHandsOver: a node whose disk turns slow (every sync
// 200 ms longer) gossips so and hands its shard leaderships to the other
// nodes, which go on acknowledging sends; once its disk is fast again it
// leads shards again.
func TestSlowDiskLeaderHandsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the disk's speed to be judged over several windows")
	}
	names := []string{"n1", "n2", "n3"}
	_, nodes := memClusterWith(t, func(c *Config) { c.DiskSlowWindow = time.Second }, names...)
	ch := channelOwnedBy("slow-disk", "n1", names...)
	awaitLeaderOfThree(t, nodes, 0, ch)
	ctx := ctxT(t)
	alice := dial(t, nodes[1], "alice")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	// A trickle of sends: the disks' speed is judged from their writes.
	stop, sent := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(sent)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := alice.Send(ctx, protocol.SendArgs{Channel: ch, ClientID: fmt.Sprint("t", i), Text: "x"}); err != nil {
				sent <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-sent; err != nil {
			t.Errorf("a send: %v", err)
		}
	}()
	leads := func(on *Node, node string) int {
		n := 0
		for _, si := range on.cl.Shards() {
			if si.Leader == node {
				n++
			}
		}
		return n
	}
	nodes[0].store.SlowSyncs(200 * time.Millisecond)
	slowed := time.Now()
	waitFor(t, 60*time.Second, "n1 to gossip a slow disk and lead no shard", func() bool {
		m, ok := nodes[1].cl.View().Member("n1")
		return ok && m.Meta.DiskSlow && leads(nodes[1], "n1") == 0
	})
	t.Logf("n1 led no shard %v after its disk slowed", time.Since(slowed).Round(10*time.Millisecond))
	nodes[0].store.SlowSyncs(0)
	waitFor(t, 60*time.Second, "n1 to gossip a fast disk and lead shards again", func() bool {
		m, ok := nodes[1].cl.View().Member("n1")
		return ok && !m.Meta.DiskSlow && leads(nodes[1], "n1") > 0
	})
}

// TestDiskSlowEndpoint: /v1/cluster/disk-slow exists only with
// --fault-injection, changes nothing without the operator key or with a
// bad delay, and slows the store's syncs (so a write) with it until
// DELETE.
func TestDiskSlowEndpoint(t *testing.T) {
	const key = "slow-test-key"
	n, u := faultEndpoint(t, key, "/v1/cluster/disk-slow")
	if st, body := operatorDo(t, "PUT", u+"?delay=1s", ""); st != http.StatusUnauthorized || n.store.SyncDelay() != 0 {
		t.Fatalf("without the key: %d %s, delay %s", st, body, n.store.SyncDelay())
	}
	for _, q := range []string{"", "?delay=x", "?delay=0s", "?delay=-1s", "?delay=11s"} {
		if st, body := operatorDo(t, "PUT", u+q, key); st != http.StatusBadRequest || n.store.SyncDelay() != 0 {
			t.Fatalf("PUT %q: %d %s, delay %s", q, st, body, n.store.SyncDelay())
		}
	}
	const delay = 150 * time.Millisecond
	if st, body := operatorDo(t, "PUT", u+"?delay=150ms", key); st != http.StatusOK || body != "{\"sync_delay_ms\":150}\n" {
		t.Fatalf("PUT: %d %s", st, body)
	}
	t.Cleanup(func() { n.store.SlowSyncs(0) })
	if v := metric(faultMetrics(t, n, key), "switchboard_fault_injected", "disk_slow"); v != 1 {
		t.Fatalf("switchboard_fault_injected{kind=disk_slow} %v while slowed, want 1", v)
	}
	if st, body := operatorDo(t, "GET", u, key); st != http.StatusOK || body != "{\"sync_delay_ms\":150}\n" {
		t.Fatalf("GET: %d %s", st, body)
	}
	c := dial(t, n, "alice")
	start := time.Now()
	if _, _, err := c.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: "slow", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < delay {
		t.Fatalf("a write on the slowed disk took %s, want at least %s", took, delay)
	}
	if st, body := operatorDo(t, "DELETE", u, key); st != http.StatusOK || body != "{\"sync_delay_ms\":0}\n" {
		t.Fatalf("DELETE: %d %s", st, body)
	}
	fams := faultMetrics(t, n, key)
	for _, kind := range []string{"partition", "lag", "disk_stall", "disk_slow"} {
		if v := metric(fams, "switchboard_fault_injected", kind); v != 0 {
			t.Fatalf("switchboard_fault_injected{kind=%s} %v with no fault, want 0", kind, v)
		}
	}
	if _, _, err := c.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: "fast", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
}
