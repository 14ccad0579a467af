package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// startWithoutJoin starts (or restarts) a node without --join, as the
// first node of a cluster is started.
func (c *testCluster) startWithoutJoin(name string, extra ...string) *proc {
	c.t.Helper()
	seed := c.seed
	c.seed = ""
	p := c.start(name, extra...)
	if seed != "" {
		c.seed = seed
	}
	return p
}

// readyStatus is the node's GET /readyz status code (0 when it does not
// answer).
func readyStatus(p *proc) int {
	resp, err := http.Get("http://" + p.addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitPlacement waits until every running node places channels on want.
func (c *testCluster) waitPlacement(want ...string) {
	c.t.Helper()
	waitFor(c.t, 20*time.Second, fmt.Sprintf("placement %v everywhere", want), func() bool {
		for name, p := range c.procs {
			if p.cmd.ProcessState != nil {
				continue
			}
			v, err := c.view(name)
			if err != nil || !slices.Equal(v.Placement, want) {
				return false
			}
		}
		return true
	})
}

// deliveredAcross checks that a message sent through one node to a
// channel reaches a watcher connected to another.
func (c *testCluster) deliveredAcross(ch, from, to, text string) {
	c.t.Helper()
	t := c.t
	ctx := ctxT(t)
	watcher := clusterClient(t, c.urls(to), "watcher-"+to)
	if _, err := watcher.Join(ctx, ch); err != nil {
		t.Fatalf("join %s through %s: %v", ch, to, err)
	}
	sender := clusterClient(t, c.urls(from), "sender-"+from)
	if _, err := sender.Join(ctx, ch); err != nil {
		t.Fatalf("join %s through %s: %v", ch, from, err)
	}
	if _, err := sender.Send(ctx, sendArgs(ch, text)); err != nil {
		t.Fatalf("send to %s through %s: %v", ch, from, err)
	}
	for {
		e := nextEvent(t, watcher, protocol.EventMessageNew)
		var d protocol.MessageResult
		if json.Unmarshal(e.Data, &d) == nil && d.Message != nil && d.Message.Text == text {
			return
		}
	}
}

// TestRestartedSeedRejoinsWithoutJoin: the first node of a cluster (no
// --join) is SIGKILLed and restarted on its data directory and gossip
// address, again without --join, as scripts restart a first node. It finds
// the other node again through its saved registry: both see each other
// alive, placement agrees, and messages cross between them both ways.
func TestRestartedSeedRejoinsWithoutJoin(t *testing.T) {
	c := newTestCluster(t)
	addrA := c.startWithoutJoin("a").gossip
	c.start("b") // --join a
	c.waitAlive(2)
	onB := channelOwnedBy("rejoin", "b", "a", "b")
	onA := channelOwnedBy("rejoin", "a", "a", "b")
	admin := adminClient(t, c.urls("a"))
	for _, ch := range []string{onA, onB} {
		if _, _, err := admin.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close()

	c.procs["a"].kill()
	waitFor(t, 10*time.Second, "b to declare a dead", func() bool {
		v, err := c.view("b")
		st, _ := v.member("a")
		return err == nil && st == "dead"
	})
	c.startWithoutJoin("a", "--cluster-bind", addrA)
	c.waitAlive(2)
	c.waitPlacement("a", "b")
	if code := readyStatus(c.procs["a"]); code != http.StatusOK {
		t.Fatalf("restarted a: /readyz %d", code)
	}
	c.deliveredAcross(onB, "a", "b", "through a to b's channel")
	c.deliveredAcross(onA, "b", "a", "through b to a's channel")
}

// TestNodeStartedBeforeItsSeedJoinsWhenItComesUp: a node whose only seed
// is down at start-up runs alone, not ready, and keeps trying; once the
// seed is back (it never knew the node) the two form one cluster and the
// node becomes ready.
func TestNodeStartedBeforeItsSeedJoinsWhenItComesUp(t *testing.T) {
	c := newTestCluster(t)
	addrA := c.startWithoutJoin("a").gossip
	c.procs["a"].kill()
	c.start("b") // --join a, which is down
	if code := readyStatus(c.procs["b"]); code != http.StatusServiceUnavailable {
		t.Fatalf("b with its seed down: /readyz %d, want 503", code)
	}
	if n := aliveMembers(c.procs["b"].addr); n != 1 {
		t.Fatalf("b sees %d alive members with its seed down", n)
	}
	// Alone, b would own every channel by placement and start channels
	// that live on a empty: it activates nothing until it has joined.
	early := dialNoReconnectURL(t, c.urls("b")[0], "early")
	_, _, err := early.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: "early", Type: protocol.TypeStandard})
	if code := codeOf(err); code != protocol.CodeUnavailable {
		t.Fatalf("create on b before it joined: %v, want unavailable", err)
	}

	c.startWithoutJoin("a", "--cluster-bind", addrA)
	c.waitAlive(2)
	c.waitPlacement("a", "b")
	waitFor(t, 10*time.Second, "b to be ready", func() bool { return readyStatus(c.procs["b"]) == http.StatusOK })
	c.waitSettled("a", "b") // b knows every shard's leader
	onA := channelOwnedBy("late", "a", "a", "b")
	admin := adminClient(t, c.urls("b"))
	if _, _, err := admin.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: onA, Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	c.deliveredAcross(onA, "b", "a", "through b to a's channel")
}
