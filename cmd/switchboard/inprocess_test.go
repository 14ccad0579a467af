package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestTwoNodesInOneProcess runs two nodes in the test's process on a
// cluster.MemNetwork: a channel led by the second node is created,
// joined and written through the first, and a watcher on the second
// node gets what was sent through the first. Tests that need nodes to
// die for real run processes (proc_test.go); this is the cheap way to
// exercise several nodes, under the race detector.
func TestTwoNodesInOneProcess(t *testing.T) {
	net := cluster.NewMemNetwork()
	n1 := testNode(t, func(c *Config) { c.NodeName, c.Network, c.ClusterName = "n1", net, "test-"+t.Name() })
	n2 := testNode(t, func(c *Config) {
		c.NodeName, c.Network, c.ClusterName = "n2", net, "test-"+t.Name()
		c.Join = []string{n1.cl.GossipAddress()}
	})
	for _, n := range []*Node{n1, n2} {
		waitFor(t, 10*time.Second, n.cl.Name()+" to place both nodes", func() bool { return len(n.cl.View().Placement()) == 2 })
	}
	ch := channelOwnedBy("inproc", "n2", "n1", "n2")
	// The channel's shard settles with its preferred leader, n2.
	waitFor(t, 20*time.Second, "n2 to lead the channel's shard", func() bool {
		leader, _ := n1.cl.LeaderOf(clusterpb.Kind_KIND_CHANNEL, ch)
		return leader == "n2"
	})
	ctx := ctxT(t)
	alice, bob := dial(t, n1, "alice"), dial(t, n2, "bob")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, ch); err != nil {
		t.Fatal(err)
	}
	m, err := alice.Send(ctx, protocol.SendArgs{Channel: ch, Text: "across"})
	if err != nil {
		t.Fatal(err)
	}
	e := nextEvent(t, bob, protocol.EventMessageNew)
	var got protocol.MessageResult
	if err := json.Unmarshal(e.Data, &got); err != nil || got.Message.ID != m.ID {
		t.Fatalf("bob got %s (%v), want message %s", e.Data, err, m.ID)
	}
	stats := n1.nodeStats(ctx) // asks both nodes, through the network
	if stats["n1"] == nil || stats["n2"] == nil || stats["n1"].Channels != 0 || stats["n2"].Channels != 1 {
		t.Errorf("active channels: n1 %+v, n2 %+v; want the channel on n2 only", stats["n1"], stats["n2"])
	}
}

// TestPartitionedLeader cuts the node leading a channel's shard off from
// the other two, both ways, while a sender on every node's gateway sends
// to it and to a channel led elsewhere: the majority elects a leader and
// goes on; the cut-off node acknowledges nothing it cannot replicate, and
// its sender's retries succeed once the cut heals. Nothing acknowledged
// is lost or stored twice, a watcher on the majority side gets every
// message once and in order, and no client sees an error.
func TestPartitionedLeader(t *testing.T) {
	net := cluster.NewMemNetwork()
	names := []string{"n1", "n2", "n3"}
	var nodes []*Node
	for _, name := range names {
		nodes = append(nodes, testNode(t, func(c *Config) {
			c.NodeName, c.Network, c.ClusterName = name, net, "test-"+t.Name()
			if len(nodes) > 0 {
				c.Join = []string{nodes[0].cl.GossipAddress()}
			}
		}))
	}
	cut, other := channelOwnedBy("cut", "n1", names...), channelOwnedBy("far", "n2", names...)
	replicated := func(ch, leader string) func() bool {
		return func() bool {
			for _, n := range nodes {
				if l, _ := n.cl.LeaderOf(clusterpb.Kind_KIND_CHANNEL, ch); l != leader {
					return false
				}
			}
			si, _ := nodes[0].cl.Shard(nodes[0].cl.ShardOf(clusterpb.Kind_KIND_CHANNEL, ch))
			return len(si.Replicas) == 3
		}
	}
	waitFor(t, 30*time.Second, "n1 to lead "+cut+" on three replicas", replicated(cut, "n1"))
	waitFor(t, 30*time.Second, "n2 to lead "+other+" on three replicas", replicated(other, "n2"))
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = "ws://" + n.Addr() + "/v1/ws"
	}
	admin := adminClient(t, urls[1:])
	for _, ch := range []string{cut, other} {
		if _, _, err := admin.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	w := startWatcher(t, urls[1:2], []string{cut, other})
	// Sender i is on node i only: the cut-off node's sender has no way
	// round the cut but to wait it out (its retries last 40 s).
	tr := startTrafficOn(t, func(i int) []string { return urls[i : i+1] }, []string{cut, other}, 3)
	tr.waitMore(t, 30, 20*time.Second)

	before := tr.perChannel()
	net.Cut("n1", "n2")
	net.Cut("n1", "n3")
	cutAt := time.Now()
	waitFor(t, 30*time.Second, "the majority to elect a leader of "+cut, func() bool {
		l, _ := nodes[1].cl.LeaderOf(clusterpb.Kind_KIND_CHANNEL, cut)
		return l == "n2" || l == "n3"
	})
	t.Logf("the majority elected a leader %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "sends to both channels during the cut", func() bool {
		now := tr.perChannel()
		return now[cut] >= before[cut]+20 && now[other] >= before[other]+20
	})
	// n1 no longer believes it leads: it stepped down when it lost the
	// majority's heartbeats (CheckQuorum), and its view of the leader is
	// either nobody or the new one, which it cannot reach.
	waitFor(t, 30*time.Second, "n1 to step down", func() bool {
		l, _ := nodes[0].cl.LeaderOf(clusterpb.Kind_KIND_CHANNEL, cut)
		return l != "n1"
	})
	t.Logf("n1 stepped down %v after the cut", time.Since(cutAt).Round(time.Millisecond))

	// Cut off, n1 acknowledges nothing: its sender's sends wait.
	stepped := tr.perSender()
	tr.waitMore(t, 20, 20*time.Second)
	if cutOff := tr.perSender(); cutOff["s0"] != stepped["s0"] {
		t.Errorf("n1 acknowledged %d sends while cut off", cutOff["s0"]-stepped["s0"])
	}

	net.Heal("n1", "n2")
	net.Heal("n1", "n3")
	healAt := time.Now()
	// The cut-off node's sender gets through.
	waitFor(t, 40*time.Second, "n1's sender to be acknowledged again", func() bool { return tr.perSender()["s0"] > stepped["s0"] })
	t.Logf("n1's sender acknowledged again %v after the heal", time.Since(healAt).Round(time.Millisecond))
	tr.waitMore(t, 30, 20*time.Second)
	tr.stop()
	reader := adminClient(t, urls[2:])
	tr.verify(t, reader)
	w.verify(t, tr)
	// After the heal the three replicas agree on everything applied.
	waitFor(t, 30*time.Second, "the replicas of "+cut+" to apply the same", func() bool {
		sh := nodes[0].cl.ShardOf(clusterpb.Kind_KIND_CHANNEL, cut)
		var applied []uint64
		for _, n := range nodes {
			si, _ := n.cl.Shard(sh)
			applied = append(applied, si.Applied)
		}
		return applied[0] == applied[1] && applied[1] == applied[2]
	})
}
