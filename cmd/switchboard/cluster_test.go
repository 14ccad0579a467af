package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
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
	admin := clusterClient(t, c.urls(), "admin")
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

// TestSIGTERMDrainsAHost: a host sent SIGTERM hands every channel to its
// next owner and leaves; clients see nothing but retried unavailable and a
// reconnect, and nothing acknowledged is lost.
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
	admin := clusterClient(t, c.urls("n1", "n3"), "admin")
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
	for _, m := range v.Members {
		// Times in the API are UTC with milliseconds.
		if m.Name == "n2" && !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(m.Since) {
			t.Errorf("n2's since is %q", m.Since)
		}
	}
	t.Logf("%d acknowledged sends; %d channels handed over by n2", tr.total.Load(), onN2)
}

// TestSIGKILLedHostAnswersUnavailableFastThenRecovers: while a host is
// down its channels answer unavailable within failure detection (never
// hanging to a timeout), other channels keep working, and when it comes
// back with its data nothing acknowledged is lost.
func TestSIGKILLedHostAnswersUnavailableFastThenRecovers(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx := ctxT(t)
	onN2 := channelOwnedBy("k", "n2", "n1", "n2", "n3")
	onN1 := channelOwnedBy("k", "n1", "n1", "n2", "n3")
	admin := clusterClient(t, c.urls("n1", "n3"), "admin")
	for _, ch := range []string{onN1, onN2} {
		if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	tr := startTraffic(t, c.urls("n1", "n3"), []string{onN1, onN2}, 2)
	tr.waitMore(t, 100, 30*time.Second)
	tr.stop()
	// A client that does not retry sees failures directly.
	probe := "probe"
	for i := 0; cluster.Owner([]string{"n1", "n2", "n3"}, cluster.ScopeKey(clusterpb.Kind_KIND_USER, probe)) == "n2"; i++ {
		probe = "probe" + strconv.Itoa(i)
	}
	raw := clusterClient(t, c.urls("n1"), probe, func(o *client.Options) { o.MaxRetry = time.Millisecond })
	for _, ch := range []string{onN1, onN2} {
		if _, err := raw.Join(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}

	c.procs["n2"].kill()
	waitFor(t, 10*time.Second, "n2's channel to answer unavailable", func() bool {
		start := time.Now()
		_, err := raw.Send(ctx, sendArgs(onN2, "while down"))
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Code == protocol.CodeUnavailable {
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("unavailable took %v", d)
			}
			return true
		}
		return false
	})
	if _, err := raw.Send(ctx, sendArgs(onN1, "unaffected")); err != nil {
		t.Fatalf("channel on a live node failed while n2 is down: %v", err)
	}
	// The probe's list shows the live channel and names the one that
	// cannot answer, rather than failing (its user actor is not on n2).
	var list protocol.ChannelsListResult
	if err := raw.Call(ctx, protocol.OpChannelsList, map[string]any{}, &list); err != nil {
		t.Fatalf("channels.list while n2 is down: %v", err)
	}
	if len(list.Channels) != 1 || list.Channels[0].ID != onN1 || fmt.Sprint(list.Unavailable) != "["+onN2+"]" {
		t.Errorf("channels.list while n2 is down: %d channels, unavailable %v; want %s listed and %s unavailable",
			len(list.Channels), list.Unavailable, onN1, onN2)
	}

	c.start("n2")
	c.waitAlive(3)
	if _, err := admin.Send(ctx, sendArgs(onN2, "back")); err != nil {
		t.Fatalf("n2's channel after restart: %v", err)
	}
	tr.verify(t, admin)
}

// TestSplitOwnershipIsFenced makes a node believe it owns a channel that
// another node serves (as a partitioned membership view would) and checks
// that at most one of them acknowledges writes: the holder refuses to
// release the channel to a node its own view does not make the owner.
func TestSplitOwnershipIsFenced(t *testing.T) {
	c := newTestCluster(t, "n1", "n2")
	ctx := ctxT(t)
	ch := channelOwnedBy("split", "n1", "n1", "n2", "n3")
	a := clusterClient(t, c.urls("n1"), "alice")
	if _, _, err := a.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	c.start("n3", "--test-claim-channels", ch)
	c.waitAlive(3)
	b := clusterClient(t, c.urls("n3"), "bob", func(o *client.Options) { o.MaxRetry = time.Millisecond })

	okA, okB := 0, 0
	for i := range 40 {
		if _, err := a.Send(ctx, sendArgs(ch, fmt.Sprintf("a%d", i))); err == nil {
			okA++
		}
		_, err := b.Send(ctx, sendArgs(ch, fmt.Sprintf("b%d", i)))
		var pe *protocol.Error
		switch {
		case err == nil:
			okB++
		case !errors.As(err, &pe) || pe.Code != protocol.CodeUnavailable:
			t.Fatalf("the claiming node answered %v, want unavailable", err)
		}
	}
	if okA != 40 || okB != 0 {
		t.Fatalf("the holder acknowledged %d/40, the claimer %d/40: want 40 and 0", okA, okB)
	}
	msgs := allMessages(t, a, ch)
	if len(msgs) != 40 {
		t.Fatalf("%d messages stored, want 40", len(msgs))
	}
}

// TestGatewayAndHostRoles runs host-only and gateway-only nodes: channels
// live on hosts only, sessions on gateways only, and a gateway sent SIGTERM
// closes its sessions with "reconnect elsewhere"; clients move to another
// gateway and resume without losing an event.
func TestGatewayAndHostRoles(t *testing.T) {
	c := newTestCluster(t, "h1:host", "h2:host", "g1:gateway", "g2:gateway")
	ctx := ctxT(t)
	v, err := c.view("g1")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(v.Placement) != "[h1 h2]" {
		t.Fatalf("placement %v, want the two hosts only", v.Placement)
	}
	admin := clusterClient(t, c.urls("g1", "g2"), "admin")
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

// TestSplitOwnershipIsFencedWhenTheClaimerLookedFirst: the node that
// wrongly believes it owns a channel looks the id up before the channel
// exists, which leaves it an activation that has never written. That
// activation holds the channel like any other: the rightful owner cannot
// take it without the claimer's agreement, which the claimer's view
// withholds. Whichever side ends up with it, at most one node ever
// acknowledges writes.
func TestSplitOwnershipIsFencedWhenTheClaimerLookedFirst(t *testing.T) {
	c := newTestCluster(t, "n1", "n2")
	ctx := ctxT(t)
	ch := channelOwnedBy("lazy", "n1", "n1", "n2", "n3")
	c.start("n3", "--test-claim-channels", ch)
	c.waitAlive(3)
	noRetry := func(o *client.Options) { o.MaxRetry = time.Millisecond }
	b := clusterClient(t, c.urls("n3"), "bob", noRetry)
	if _, err := b.Join(ctx, ch); err == nil {
		t.Fatal("join of a channel that does not exist succeeded")
	}
	a := clusterClient(t, c.urls("n1"), "alice", noRetry)
	_, _, errA := a.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard})
	_, _, errB := b.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard})
	if errA == nil && errB == nil {
		t.Fatal("both nodes created the channel")
	}
	okA, okB := 0, 0
	for i := range 10 {
		if _, err := a.Send(ctx, sendArgs(ch, fmt.Sprintf("a%d", i))); err == nil {
			okA++
		}
		if _, err := b.Send(ctx, sendArgs(ch, fmt.Sprintf("b%d", i))); err == nil {
			okB++
		}
	}
	if okA > 0 && okB > 0 {
		t.Fatalf("two activations acknowledged writes: owner %d, claimer %d", okA, okB)
	}
	t.Logf("owner created: %v, claimer created: %v; acks owner %d, claimer %d", errA == nil, errB == nil, okA, okB)
}
