package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestClusterFormsAndDeliversInOrderAcrossGateways: three nodes find each
// other by gossip; sessions on different gateways in one channel see the
// same events in the same seq order; and each event crosses the network
// once per gateway, not once per session (every gateway has three
// sessions in the channel and receives each event once).
func TestClusterFormsAndDeliversInOrderAcrossGateways(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx := ctxT(t)
	v, err := c.view("n2")
	if err != nil || len(v.Placement) != 3 {
		t.Fatalf("n2's view: %+v %v", v, err)
	}
	nodes := []string{"n1", "n2", "n3"}
	const perGateway = 3 // the sender and two watchers
	var clients, sessions []*client.Client
	for i, name := range nodes {
		for j := range perGateway {
			cl := clusterClient(t, c.urls(name), fmt.Sprintf("u%s-%d", name, j))
			if i == 0 && j == 0 {
				if _, _, err := cl.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "shared", Type: protocol.TypeStandard}); err != nil {
					t.Fatal(err)
				}
			} else if _, err := cl.Join(ctx, "shared"); err != nil {
				t.Fatal(err)
			}
			if j == 0 {
				clients = append(clients, cl)
			}
			sessions = append(sessions, cl)
		}
	}
	// nextText is a session's next user message in the channel (system
	// messages from the joins are skipped) as "seq:id", and its text.
	nextText := func(cl *client.Client) (string, string) {
		t.Helper()
		for {
			e := nextEvent(t, cl, protocol.EventMessageNew)
			var d protocol.MessageResult
			_ = json.Unmarshal(e.Data, &d)
			if d.Message != nil && d.Message.Type != protocol.MessageSystem {
				return fmt.Sprintf("%d:%s", e.Seq, d.Message.ID), d.Message.Text
			}
		}
	}
	// Once every session has the marker, every event before it has
	// reached every gateway: the counters start from a quiet point.
	if _, err := clients[0].Send(ctx, sendArgs("shared", "marker")); err != nil {
		t.Fatal(err)
	}
	for _, cl := range sessions {
		if _, text := nextText(cl); text != "marker" {
			t.Fatalf("first message %q, want the marker", text)
		}
	}
	before := map[string][2]float64{}
	for _, name := range nodes {
		before[name] = c.fanout(name)
	}

	const each = 20
	errc := make(chan error, len(clients))
	for i, cl := range clients {
		go func() {
			for j := range each {
				if _, err := cl.Send(ctx, sendArgs("shared", fmt.Sprintf("%d-%d", i, j))); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range clients {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	var streams [][]string
	for _, cl := range sessions {
		var got []string
		for len(got) < each*len(clients) {
			key, _ := nextText(cl)
			got = append(got, key)
		}
		streams = append(streams, got)
	}
	for i := 1; i < len(streams); i++ {
		for j := range streams[0] {
			if streams[i][j] != streams[0][j] {
				t.Fatalf("session %d saw %s at position %d, session 0 saw %s", i, streams[i][j], j, streams[0][j])
			}
		}
	}
	const sent = each * 3
	for _, name := range nodes {
		after := c.fanout(name)
		events, deliveries := after[0]-before[name][0], after[1]-before[name][1]
		if events != sent || deliveries != sent*perGateway {
			t.Errorf("%s received %v channel events and made %v deliveries, want %d and %d", name, events, deliveries, sent, sent*perGateway)
		}
	}
}

// TestNodeJoinMovesChannelsUnderTraffic adds a fourth node while traffic
// runs: the channels placement gives it move there, and nothing
// acknowledged is lost or duplicated.
func TestNodeJoinMovesChannelsUnderTraffic(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx := ctxT(t)
	var channels []string
	moving := 0
	for i := range 16 {
		ch := fmt.Sprintf("j%d", i)
		channels = append(channels, ch)
		if owner(ch, "n1", "n2", "n3", "n4") == "n4" {
			moving++
		}
	}
	if moving == 0 {
		t.Fatal("no test channel moves to n4; pick other names")
	}
	admin := adminClient(t, c.urls())
	for _, ch := range channels {
		if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	w := startWatcher(t, c.urls("n1"), channels)
	tr := startTraffic(t, c.urls(), channels, 4)
	tr.waitMore(t, 100, 30*time.Second)

	c.start("n4")
	c.waitAlive(4)
	tr.waitMore(t, 200, 60*time.Second)
	// The shards whose placement now includes n4 move a replica there
	// (added as a learner, caught up, swapped in), and those it ranks first
	// for move their leadership to it.
	c.waitSettled("n1", "n2", "n3", "n4")
	waitFor(t, 30*time.Second, "n4 to host the channels that moved", func() bool {
		v, err := c.view("n4")
		if err != nil {
			return false
		}
		_, n := v.member("n4")
		return n >= moving
	})
	tr.waitMore(t, 100, 30*time.Second)
	tr.stop()
	tr.verify(t, admin)
	w.verify(t, tr)
	t.Logf("%d acknowledged sends; %d of %d channels moved to n4", tr.total.Load(), moving, len(channels))
}

// TestSIGTERMDrainsAHost: a host sent SIGTERM hands the leadership of its
// shards to other replicas, waits until the shards' leaders have removed
// its replicas (no other host takes them: the shards keep two) and leaves;
// clients see nothing but retried unavailable and a reconnect, and
// nothing acknowledged is lost.
func TestSIGTERMDrainsAHost(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx := ctxT(t)
	var channels []string
	onN2 := 0
	for i := range 12 {
		ch := fmt.Sprintf("d%d", i)
		channels = append(channels, ch)
		if owner(ch, "n1", "n2", "n3") == "n2" {
			onN2++
		}
	}
	admin := adminClient(t, c.urls("n1", "n3"))
	for _, ch := range channels {
		if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	// Senders connect to every gateway, n2 included: its sessions are told
	// to reconnect elsewhere.
	w := startWatcher(t, c.urls("n3"), channels)
	tr := startTraffic(t, c.urls("n2", "n1", "n3"), channels, 4)
	tr.waitMore(t, 150, 30*time.Second)

	if err := c.procs["n2"].term(60 * time.Second); err != nil {
		t.Fatalf("n2 did not exit cleanly after SIGTERM: %v\n%s", err, readFile(c.procs["n2"].logf))
	}
	tr.waitMore(t, 150, 60*time.Second)
	tr.stop()
	tr.verify(t, admin)
	w.verify(t, tr)
	v, err := c.view("n1")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := v.member("n2"); st != "left" {
		t.Fatalf("n2 is %q after its drain, want left\n%s", st, readFile(c.procs["n1"].logf))
	}
	// Every shard lives on n1 and n3 alone (two replicas: no other host).
	c.waitSettled("n1", "n3")
	for _, m := range v.Members {
		// Times in the API are UTC with milliseconds.
		if m.Name == "n2" && !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(m.Since) {
			t.Errorf("n2's since is %q", m.Since)
		}
	}
	t.Logf("%d acknowledged sends; %d channels handed over by n2", tr.total.Load(), onN2)
}

// TestLeaderKillLosesNothingAndServesOn: a node leading a third of the
// shards is killed with SIGKILL under traffic; its channels keep serving
// (new leaders are elected among their other replicas), every
// acknowledged message is present exactly once with contiguous segments,
// and watchers miss nothing. The node comes back (with --join), catches
// up and takes its share of leaders back.
func TestLeaderKillLosesNothingAndServesOn(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	c.waitSettled("n1", "n2", "n3")
	ctx := ctxT(t)
	channels := []string{channelOwnedBy("k", "n1", "n1", "n2", "n3"), channelOwnedBy("k", "n2", "n1", "n2", "n3"),
		channelOwnedBy("k", "n3", "n1", "n2", "n3")}
	admin := adminClient(t, c.urls("n1", "n3"))
	for _, ch := range channels {
		if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	w := startWatcher(t, c.urls("n1", "n3"), channels)
	tr := startTraffic(t, c.urls("n1", "n3"), channels, 3)
	tr.waitMore(t, 150, 30*time.Second)
	before := tr.perChannel()
	c.procs["n2"].kill()
	// Every channel, n2's included, goes on.
	waitFor(t, 30*time.Second, "every channel to progress after the kill", func() bool {
		now := tr.perChannel()
		for _, ch := range channels {
			if now[ch] < before[ch]+20 {
				return false
			}
		}
		return true
	})
	c.start("n2")
	c.waitAlive(3)
	c.waitSettled("n1", "n2", "n3")
	tr.waitMore(t, 100, 30*time.Second)
	tr.stop()
	tr.verify(t, admin)
	w.verify(t, tr)
	t.Logf("%d acknowledged sends", tr.total.Load())
}

// TestGatewayAndHostRoles runs host-only and gateway-only nodes: channels
// live on hosts only, sessions on gateways only, and a gateway sent SIGTERM
// closes its sessions with "reconnect elsewhere"; clients move to another
// gateway and resume without losing an event.
func TestGatewayAndHostRoles(t *testing.T) {
	c := newTestCluster(t, "h1:host", "h2:host", "g1:gateway", "g2:gateway")
	ctx := ctxT(t)
	// The view may still lack a host (fast failure detection on a busy
	// machine can suspect one for a moment); it never holds a gateway.
	waitFor(t, 20*time.Second, "placement of the two hosts only, as g1 sees it", func() bool {
		v, err := c.view("g1")
		if err != nil {
			return false
		}
		for _, n := range v.Placement {
			if n != "h1" && n != "h2" {
				t.Fatalf("placement %v holds a gateway", v.Placement)
			}
		}
		return fmt.Sprint(v.Placement) == "[h1 h2]"
	})
	admin := adminClient(t, c.urls("g1", "g2"))
	channels := []string{"r1", "r2", "r3", "r4"}
	for _, ch := range channels {
		if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	// The watcher sits on g1 first; senders use both gateways.
	w := startWatcher(t, c.urls("g1", "g2"), channels)
	tr := startTraffic(t, c.urls("g1", "g2"), channels, 2)
	tr.waitMore(t, 100, 30*time.Second)
	if err := c.procs["g1"].term(30 * time.Second); err != nil {
		t.Fatalf("g1 did not exit after SIGTERM: %v", err)
	}
	tr.waitMore(t, 100, 30*time.Second)
	tr.stop()
	tr.verify(t, admin)
	w.verify(t, tr)
	for _, h := range []string{"h1", "h2"} {
		v, err := c.view("g2")
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := v.member(h); st != "alive" {
			t.Fatalf("%s is %s", h, st)
		}
	}
	if v, _ := c.view("g2"); func() int { _, n := v.member("g2"); return n }() != 0 {
		t.Fatal("a gateway-only node hosts channels")
	}
}

// TestWholeClusterStopsWithoutWaiting: every host of a cluster sent
// SIGTERM at once (the whole cluster stopped) finds no other host to take
// its replicas and exits cleanly within a few seconds, keeping them,
// instead of waiting out its drain timeout.
func TestWholeClusterStopsWithoutWaiting(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	c := newTestCluster(t, names...)
	admin := adminClient(t, c.urls("n1"))
	if _, _, err := admin.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: "room", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, n := range names {
		_ = c.procs[n].cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range names {
		if err := c.procs[n].term(30 * time.Second); err != nil { // the drain timeout is 45 s
			t.Fatalf("%s did not exit cleanly within 30 s of SIGTERM: %v\n%s", n, err, readFile(c.procs[n].logf))
		}
	}
	t.Logf("the three hosts exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	stopped := 0
	for _, n := range names {
		log := readFile(c.procs[n].logf)
		if strings.Contains(log, "drain incomplete") {
			t.Errorf("%s waited out its drain timeout:\n%s", n, log)
		}
		if strings.Contains(log, "drain stopped: every other host is draining or down") || strings.Contains(log, "no other host to hand shards over to") {
			stopped++
		}
	}
	if stopped != len(names) {
		t.Errorf("%d of %d hosts said they kept their replicas for want of another host", stopped, len(names))
	}
}
