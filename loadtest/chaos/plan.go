package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Fault kinds.
const (
	// FaultKill: SIGKILL a node, keep it down a while, start it again on
	// the same data directory under the same name.
	FaultKill = "kill"
	// FaultPause: SIGSTOP a node for longer than an election takes, then
	// SIGCONT it: it must step down and serve nothing stale.
	FaultPause = "pause"
	// FaultWipe: SIGKILL a node, delete its data directory, start it
	// again empty (see Config.WipeIdentity).
	FaultWipe = "wipe"
	// FaultRestart: SIGTERM a node (it drains and exits) and start it
	// again at once: a rolling restart.
	FaultRestart = "restart"
	// FaultDrain: SIGTERM a node (it hands everything over and leaves the
	// cluster), keep it away a while, then start it again so that the
	// cluster does not shrink.
	FaultDrain = "drain"
	// FaultPartition: cut a node off from every other node, both ways,
	// for a while (the nodes run with --fault-injection): gossip, the
	// actor transport, raft and forwarded HTTP; its own clients still
	// reach its gateway. Then heal it.
	FaultPartition = "partition"
	// FaultSplit: split the cluster in two, both ways, for a while: the
	// node and as many others, drawn from the seed, as make its side half
	// of the cluster or just under (none of three nodes, so a partition;
	// one other of four or five; two of six or seven). A shard with most
	// of its replicas on the node's side keeps or elects its leader there,
	// and the other side's gateways cannot reach it until the heal.
	FaultSplit = "split"
	// FaultOneway: cut the links between a node and every other node in
	// one direction only, drawn from the seed, for a while: either the
	// node cannot reach the others (its dials and connections to them)
	// or they cannot reach it. Connections dialled the other way keep
	// carrying the actor transport and raft, so messages still flow one
	// way; gossip is cut both ways (a node cut from another drops its
	// packets too), so each side declares the other dead. Then heal.
	FaultOneway = "oneway"
	// FaultDiskStall: every write and sync of a node's store blocks for a
	// while, as on a disk that stops answering (the nodes run with
	// --fault-injection); the process, its network and its reads go on.
	// Its raft loop is stuck in its round's write, so it sends no
	// heartbeats and its shards elect leaders elsewhere. Then the writes
	// run again.
	FaultDiskStall = "disk-stall"
	// FaultLag: slow the links between a node and every other node, both
	// ways, for a while (the nodes run with --fault-injection): everything
	// crossing them arrives late (a delay drawn from the seed, with
	// jitter) and some gossip packets are lost, as over a congested or
	// far-away network. Nothing is cut. Then the links are fast again.
	FaultLag = "lag"
	// FaultDiskSlow: every sync of a node's store takes longer (a delay
	// drawn from the seed) for a long while, as on a slow or overloaded
	// disk (the nodes run with --fault-injection). The node answers, but
	// each of its Raft rounds waits that long; after about 10 s it judges
	// its disk slow, and its shards' leaderships move to other nodes.
	// Then the syncs are fast again.
	FaultDiskSlow = "disk-slow"
)

// diskSlowHoldMin is the shortest hold of a disk-slow fault: a node
// judges its disk slow after two 5-second windows of slow syncs.
const diskSlowHoldMin = 12 * time.Second

// Kinds are every fault kind, in the order the docs list them.
var Kinds = []string{FaultKill, FaultPause, FaultWipe, FaultRestart, FaultDrain, FaultPartition, FaultSplit, FaultOneway, FaultDiskStall, FaultLag, FaultDiskSlow}

// ParseKinds reads a comma-separated list of fault kinds.
func ParseKinds(s string) ([]string, error) {
	var out []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
		case !slices.Contains(Kinds, k):
			return nil, fmt.Errorf("unknown fault %q (want %s)", k, strings.Join(Kinds, ", "))
		case !slices.Contains(out, k):
			out = append(out, k)
		}
	}
	return out, nil
}

// Planned is one fault of a plan.
type Planned struct {
	N    int    `json:"n"`
	Kind string `json:"kind"`
	// At is when it is due, from the first send.
	At time.Duration `json:"at_ns"`
	// Hold is how long the node stays down (kill, wipe, drain), stopped
	// (pause), cut off (partition, split, oneway), without a disk
	// (disk-stall) or slowed (lag, disk-slow); 0 for a restart.
	Hold time.Duration `json:"hold_ns"`
	// Channel is the index of the run channel whose shard leader the
	// fault hits, when the cluster says who leads it
	// (GET /v1/cluster/locate); otherwise it hits node Slot.
	Channel int `json:"channel"`
	Slot    int `json:"slot"`
	// Draw seeds the fault's own choices: the nodes that go with the
	// target's side of a split (splitSides), a one-way cut's direction,
	// a lag's delay (lagOf), a slow disk's (syncDelayOf).
	Draw uint64 `json:"draw,omitempty"`
}

// PlanConfig is what a plan is drawn from.
type PlanConfig struct {
	Seed     uint64
	Kinds    []string
	Nodes    int
	Channels int
	// Faults start in [Start, End): a fault whose hold would end later
	// than End minus Settle is not planned.
	Start, End time.Duration
	// Interval is the mean time between two faults' starts.
	Interval time.Duration
	// Settle is the time kept free after the last fault's hold, for the
	// node to come back before the load ends.
	Settle time.Duration
	// Down is the mean time a killed, wiped or drained node stays down
	// (or a partitioned one cut off, a split lasts, a disk stalls);
	// Pause the shortest SIGSTOP.
	Down, Pause time.Duration
}

// Plan draws the faults of a run from the seed: the same config gives
// the same faults, at the same times, of the same lengths, at the same
// targets. Kinds are drawn without replacement, a full round of every
// kind before any repeats, so a run long enough for N faults of N kinds
// has each once. Faults are spaced Interval apart on average (±30 %),
// the first after half an Interval.
func Plan(cfg PlanConfig) []Planned {
	if len(cfg.Kinds) == 0 || cfg.Nodes < 1 || cfg.Channels < 1 || cfg.Interval <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0xc4a05f1e5ca1ab1e))
	between := func(lo, hi float64, d time.Duration) time.Duration {
		return time.Duration((lo + (hi-lo)*rng.Float64()) * float64(d))
	}
	var bag []string
	var out []Planned
	at := cfg.Start + between(0.3, 0.7, cfg.Interval)
	for {
		if len(bag) == 0 {
			bag = slices.Clone(cfg.Kinds)
			rng.Shuffle(len(bag), func(i, j int) { bag[i], bag[j] = bag[j], bag[i] })
		}
		kind := bag[0]
		bag = bag[1:]
		var hold time.Duration
		switch kind {
		case FaultKill, FaultWipe, FaultPartition, FaultSplit, FaultOneway, FaultDiskStall:
			hold = between(0.5, 1.5, cfg.Down)
		case FaultDrain, FaultLag:
			hold = between(1, 2, cfg.Down)
		case FaultPause:
			hold = between(1, 1.5, cfg.Pause)
		case FaultDiskSlow: // long enough for the node to judge its disk slow
			hold = max(between(6, 8, cfg.Down), diskSlowHoldMin)
		}
		f := Planned{N: len(out) + 1, Kind: kind, At: at, Hold: hold.Round(time.Millisecond),
			Channel: rng.IntN(cfg.Channels), Slot: rng.IntN(cfg.Nodes)}
		if kind == FaultSplit || kind == FaultOneway || kind == FaultLag || kind == FaultDiskSlow {
			f.Draw = rng.Uint64()
		}
		if f.At+f.Hold > cfg.End-cfg.Settle {
			return out
		}
		out = append(out, f)
		at += between(0.7, 1.3, cfg.Interval)
	}
}
