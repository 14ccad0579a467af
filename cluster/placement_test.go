package cluster

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// TestPlacementSpread places 30,000 channels over nodes whose names differ
// in one character and checks each node gets within ±5 % of an even share.
func TestPlacementSpread(t *testing.T) {
	sets := [][]string{
		{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"},
		{"n1", "n2", "n3"},
		{"node-a", "node-b", "node-c", "node-d"},
	}
	const channels = 30000
	for _, nodes := range sets {
		count := map[string]int{}
		for i := range channels {
			count[Owner(nodes, ScopeKey(clusterpb.Kind_KIND_CHANNEL, fmt.Sprintf("channel-%d", i)))]++
		}
		even := float64(channels) / float64(len(nodes))
		for _, n := range nodes {
			if dev := math.Abs(float64(count[n])-even) / even; dev > 0.05 {
				t.Errorf("%v: %s owns %d of %d channels (%.1f %% off even)", nodes, n, count[n], channels, dev*100)
			}
		}
		t.Logf("%v: %v", nodes, count)
	}
}

// TestPlacementMovesOnlyWhatTheNewNodeWins: adding a node moves only the
// scopes it now owns, and removing it moves them back.
func TestPlacementMovesOnlyWhatTheNewNodeWins(t *testing.T) {
	three := []string{"n1", "n2", "n3"}
	four := append(append([]string{}, three...), "n4")
	moved := 0
	for i := range 10000 {
		k := ScopeKey(clusterpb.Kind_KIND_CHANNEL, fmt.Sprintf("c%d", i))
		before, after := Owner(three, k), Owner(four, k)
		if before != after {
			moved++
			if after != "n4" {
				t.Fatalf("%s moved from %s to %s, not to the new node", k, before, after)
			}
		}
		if r := Rank(four, k); r[0] != after || len(r) != 4 {
			t.Fatalf("rank %v disagrees with owner %s", r, after)
		}
	}
	if share := float64(moved) / 10000; share < 0.2 || share > 0.3 {
		t.Fatalf("%.1f %% moved, want about 25 %%", share*100)
	}
}

func TestRegistryMerge(t *testing.T) {
	r, _ := newRegistry(nil)
	r.merge(HostRecord{Name: "a", Incarnation: 1, Remote: "x:1"})
	if r.merge(HostRecord{Name: "a", Incarnation: 1, Remote: "x:1"}) {
		t.Fatal("identical record reported as a change")
	}
	// Leaving in the same life supersedes.
	if !r.merge(HostRecord{Name: "a", Incarnation: 1, Left: true, Remote: "x:1"}) {
		t.Fatal("leave not taken")
	}
	// An older life's news is ignored; a newer life returns the node.
	if r.merge(HostRecord{Name: "a", Incarnation: 0, Remote: "old:1"}) {
		t.Fatal("older incarnation taken")
	}
	if !r.merge(HostRecord{Name: "a", Incarnation: 2, Remote: "x:2"}) {
		t.Fatal("newer incarnation not taken")
	}
	recs := r.all()
	if len(recs) != 1 || recs[0].Left || recs[0].Remote != "x:2" {
		t.Fatalf("registry %+v", recs)
	}
	// Round trip through the push/pull encoding.
	r2, _ := newRegistry(nil)
	r2.merge(decodeRecords(r.encode())...)
	if got := r2.all(); len(got) != 1 || got[0].Remote != "x:2" || got[0].Incarnation != 2 {
		t.Fatalf("decoded %+v", got)
	}
}

func TestViewPlacementKeepsDeadHostsAndDropsLeftAndDraining(t *testing.T) {
	host := []Role{RoleHost}
	v := buildView(map[string]Member{
		"alive":    {Name: "alive", State: StateAlive, Meta: Meta{Roles: host, Remote: "a", Cluster: "c"}},
		"dead":     {Name: "dead", State: StateDead, Meta: Meta{Roles: host, Remote: "b", Cluster: "c"}},
		"left":     {Name: "left", State: StateLeft, Meta: Meta{Roles: host, Remote: "c", Cluster: "c"}},
		"draining": {Name: "draining", State: StateAlive, Meta: Meta{Roles: host, Remote: "d", Draining: true, Cluster: "c"}},
		"gateway":  {Name: "gateway", State: StateAlive, Meta: Meta{Roles: []Role{RoleGateway}, Remote: "e", Cluster: "c"}},
		"stranger": {Name: "stranger", State: StateAlive, Meta: Meta{Roles: host, Remote: "f", Cluster: "other"}},
	}, "c")
	if got := fmt.Sprint(v.Placement()); got != "[alive dead]" {
		t.Fatalf("placement %s", got)
	}
	if got := fmt.Sprint(v.Hosts()); got != "[alive dead draining stranger]" {
		t.Fatalf("hosts %s", got)
	}
}

// TestRouterDeadlines: calls expire at their deadline, not before, found
// through the timing wheel — including calls more than a turn away and
// calls completed (taken) before their deadline.
func TestRouterDeadlines(t *testing.T) {
	r := newRouter(&Cluster{cfg: Config{MaxPending: 100}})
	start := time.Unix(1000, 0)
	r.swept = tickOf(start)
	nop := func(*clusterpb.Reply) {}
	short, _ := r.add("n", start.Add(100*time.Millisecond), nop)
	mid, _ := r.add("n", start.Add(320*time.Millisecond), nop)
	far, _ := r.add("n", start.Add(wheelSlots*wheelTick+time.Second), nop) // more than a turn
	done, _ := r.add("n", start.Add(200*time.Millisecond), nop)
	r.take(done)
	at := func(d time.Duration) []uint64 {
		ids, _ := r.expire(start.Add(d))
		return ids
	}
	if got := at(50 * time.Millisecond); len(got) != 0 {
		t.Fatalf("expired early: %v", got)
	}
	if got := at(150 * time.Millisecond); len(got) != 1 || got[0] != short {
		t.Fatalf("at 150ms: %v, want [%d]", got, short)
	}
	if got := at(310 * time.Millisecond); len(got) != 0 {
		t.Fatalf("at 310ms: %v (mid is due at 320ms)", got)
	}
	if got := at(360 * time.Millisecond); len(got) != 1 || got[0] != mid {
		t.Fatalf("at 360ms: %v, want [%d]", got, mid)
	}
	// A turn later the far call's slot comes round before it is due.
	if got := at(wheelSlots*wheelTick + 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("far call expired a turn early: %v", got)
	}
	if got := at(wheelSlots*wheelTick + 1100*time.Millisecond); len(got) != 1 || got[0] != far {
		t.Fatalf("far call: %v, want [%d]", got, far)
	}
	if len(r.pending) != 0 {
		t.Fatalf("%d calls left", len(r.pending))
	}
}
