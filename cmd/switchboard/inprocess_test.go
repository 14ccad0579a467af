package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestTwoNodesInOneProcess runs two nodes in the test's process on a
// cluster.MemNetwork: a channel led by the second node is created,
// joined and written through the first, and a watcher on the second
// node gets what was sent through the first. Tests that need nodes to
// die for real run processes (proc_test.go); this is the cheap way to
// exercise several nodes, under the race detector.
func TestTwoNodesInOneProcess(t *testing.T) {
	_, nodes := memCluster(t, "n1", "n2")
	n1, n2 := nodes[0], nodes[1]
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

// TestPartitionedLeader is the partition scenario (partitionScenario) on
// three nodes in the test's process, cut apart on their MemNetwork.
func TestPartitionedLeader(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	net, nodes := memCluster(t, names...)
	sc := partitionScenario{
		leader: func(on int, ch string) string {
			l, _ := nodes[on].cl.LeaderOf(clusterpb.Kind_KIND_CHANNEL, ch)
			return l
		},
		cut:  func() { net.Cut("n1", "n2"); net.Cut("n1", "n3") },
		heal: func() { net.Heal("n1", "n2"); net.Heal("n1", "n3") },
	}
	for _, n := range nodes {
		sc.urls = append(sc.urls, "ws://"+n.Addr()+"/v1/ws")
	}
	// The shard of the cut channel is on three replicas before the cut,
	// and they agree on everything applied after the heal.
	applied := func(ch string) []uint64 {
		var out []uint64
		for _, n := range nodes {
			si, _ := n.cl.Shard(n.cl.ShardOf(clusterpb.Kind_KIND_CHANNEL, ch))
			out = append(out, si.Applied)
		}
		return out
	}
	// Three voters: a learner would not make n2 and n3 a majority.
	sc.ready = func(ch string) bool { return voters(nodes[0], ch) == 3 }
	sc.healed = func(ch string) bool { a := applied(ch); return a[0] == a[1] && a[1] == a[2] }
	sc.run(t, names)
}

// TestQuietChannelAfterABlip: a channel's message whose event was lost
// on its way to a watcher's gateway, in a link's short break that nobody
// declared a death for, reaches the watcher after the link is back,
// though the channel stays quiet after it (the gateway's gap check would
// only notice with the next message): the owner tells the gateway to
// watch the channel again.
func TestQuietChannelAfterABlip(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	net, nodes := memCluster(t, names...)
	ch := channelOwnedBy("quiet", "n2", names...)
	// n2 leads, seen by all, on three voters: n2 and n3 commit while n1 is
	// cut off from n2 (a learner on n3 would not make them a majority).
	awaitLeaderOfThree(t, nodes, 1, ch)
	ctx := ctxT(t)
	alice, carol := dial(t, nodes[1], "alice"), dial(t, nodes[0], "carol") // the owner's gateway, another
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard, Members: []string{"carol"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Watch(ctx, ch, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, protocol.SendArgs{Channel: ch, Text: "before"}); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, carol, protocol.EventMessageNew)

	lost := func() uint64 { return nodes[1].cl.LostMessages()["events"] }
	before := lost()
	net.Cut("n1", "n2") // n2 and n3 still commit
	m, err := alice.Send(ctx, protocol.SendArgs{Channel: ch, Text: "in the blip"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n2 to lose the event for n1", func() bool { return lost() > before })
	net.Heal("n1", "n2")
	e := nextEvent(t, carol, protocol.EventMessageNew)
	var got protocol.MessageResult
	if err := json.Unmarshal(e.Data, &got); err != nil || got.Message.ID != m.ID {
		t.Fatalf("carol got %s (%v), want message %s", e.Data, err, m.ID)
	}
}

// memCluster starts a node of each name in the test's process, on a
// MemNetwork of their own, each joining the first.
func memCluster(t *testing.T, names ...string) (*cluster.MemNetwork, []*Node) {
	return memClusterWith(t, nil, names...)
}

// memClusterWith is memCluster with mutate (unless nil) applied to every
// node's Config.
func memClusterWith(t *testing.T, mutate func(*Config), names ...string) (*cluster.MemNetwork, []*Node) {
	net := cluster.NewMemNetwork()
	var nodes []*Node
	for _, name := range names {
		nodes = append(nodes, testNode(t, func(c *Config) {
			c.NodeName, c.Network, c.ClusterName = name, net, "test-"+t.Name()
			if len(nodes) > 0 {
				c.Join = []string{nodes[0].cl.GossipAddress()}
			}
			if mutate != nil {
				mutate(c)
			}
		}))
	}
	return net, nodes
}

// awaitLeaderOfThree waits until nodes[leader] leads ch's shard, seen so
// by every node, on three voters.
func awaitLeaderOfThree(t *testing.T, nodes []*Node, leader int, ch string) {
	t.Helper()
	name := nodes[leader].cl.Name()
	waitFor(t, 30*time.Second, name+" to lead the channel's shard on three voters, seen by all", func() bool {
		for _, n := range nodes {
			if l, _ := n.cl.LeaderOf(clusterpb.Kind_KIND_CHANNEL, ch); l != name {
				return false
			}
		}
		return voters(nodes[leader], ch) == 3
	})
}

// voters counts the voters of ch's shard, as n sees them.
func voters(n *Node, ch string) int {
	si, _ := n.cl.Shard(n.cl.ShardOf(clusterpb.Kind_KIND_CHANNEL, ch))
	v := 0
	for _, r := range si.Replicas {
		if r.Role == shard.RoleVoter {
			v++
		}
	}
	return v
}

// TestFiveNodesReplicateEveryShard: a cluster formed by one node grows to
// five, and every shard ends on three voters with a leader, also the
// shards whose ranked hosts leave out the node that formed the cluster
// (they used to stay on that node alone).
func TestFiveNodesReplicateEveryShard(t *testing.T) {
	_, nodes := memCluster(t, "n1", "n2", "n3", "n4", "n5")
	why := "not looked yet"
	settled := func() bool {
		for _, n := range nodes {
			shards := n.cl.Shards()
			if len(shards) != int(DefaultShards) {
				why = fmt.Sprintf("%s knows %d shards", n.cl.Name(), len(shards))
				return false
			}
			for _, si := range shards {
				voters := 0
				for _, r := range si.Replicas {
					if r.Role == shard.RoleVoter {
						voters++
					}
				}
				if si.Leader == "" || voters != 3 {
					why = fmt.Sprintf("%s sees shard %d led by %q on %d voters", n.cl.Name(), si.Shard, si.Leader, voters)
					return false
				}
			}
		}
		return true
	}
	for deadline := time.Now().Add(60 * time.Second); !settled(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not every shard on three voters after 60 s: %s", why)
		}
	}
}
