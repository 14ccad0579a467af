package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Fault is one fault as it happened. Times are seconds from the first
// send; a time not reached is left out.
type Fault struct {
	Planned
	// Node is the place hit (n1, n2 …), Identity the name it ran under,
	// NewIdentity the name it came back under (a wipe with a new
	// identity).
	Node        string `json:"node"`
	Identity    string `json:"identity"`
	NewIdentity string `json:"new_identity,omitempty"`
	PID         int    `json:"pid"`
	// With are the places on the node's side of a split.
	With []string `json:"with,omitempty"`
	// Direction is a one-way cut's: "out" (the node cannot reach the
	// others) or "in" (they cannot reach it).
	Direction string `json:"direction,omitempty"`
	// DelayMS, JitterMS and Loss are a lag's: each way, what crosses a
	// slowed link is DelayMS late plus up to JitterMS, and Loss of the
	// gossip packets are lost. A slow disk's DelayMS is what each sync
	// of the node's store took longer.
	DelayMS  float64 `json:"delay_ms,omitempty"`
	JitterMS float64 `json:"jitter_ms,omitempty"`
	Loss     float64 `json:"loss,omitempty"`
	// Target says how the node was chosen: "leader of shard S (channel
	// C)" for the planned channel, or "seeded node" (the planned one)
	// when no node answers GET /v1/cluster/locate.
	Target string `json:"target"`
	// AtS: injected; DownS: the process exited or stopped; BackS: started
	// again or continued; RecoveredS: every node ready and seeing every
	// other alive again.
	AtS        float64 `json:"at_s"`
	DownS      float64 `json:"down_s,omitempty"`
	BackS      float64 `json:"back_s,omitempty"`
	RecoveredS float64 `json:"recovered_s,omitempty"`
	// Error says what went wrong injecting or recovering (a problem of
	// the run).
	Error string `json:"error,omitempty"`
	// Unavailability is what the load saw while the fault lasted.
	Unavailability Unavailability `json:"unavailability"`
}

// injector runs a plan against the cluster.
type injector struct {
	c        *cluster
	channels []string // the run's channel ids, by index
	origin   time.Time
	faults   []Fault
}

// settleTimeout bounds how long a node may take to be ready and seen
// alive by every other after it came back.
const settleTimeout = 60 * time.Second

func (in *injector) since() float64 { return time.Since(in.origin).Seconds() }

// run injects each planned fault at its time until end passes (the load
// stops), stopping early if the cluster did not recover from one. A
// fault's hold is cut short when end passes, so every node is back
// before the load's final checks; ctx ending (an interrupt) stops
// everything.
func (in *injector) run(ctx, end context.Context, plan []Planned) {
	for _, p := range plan {
		t := time.NewTimer(time.Until(in.origin.Add(p.At)))
		select {
		case <-t.C:
		case <-end.Done():
			t.Stop()
			return
		}
		f := in.inject(ctx, end, p)
		in.faults = append(in.faults, f)
		if f.Error != "" || ctx.Err() != nil {
			return
		}
	}
}

// inject carries one fault out and waits for the cluster to recover.
func (in *injector) inject(ctx, end context.Context, p Planned) (f Fault) {
	c := in.c
	n := c.nodes[p.Slot]
	f.Planned = p
	f.Target = "seeded node" // no node answers GET /v1/cluster/locate
	if p.Channel < len(in.channels) {
		if l, ok := c.locate(ctx, in.channels[p.Channel]); ok {
			n = l.node
			f.Target = fmt.Sprintf("leader of shard %s (channel %s)", l.shard, in.channels[p.Channel])
		}
	}
	f.Node, f.Identity = n.base, n.name
	f.AtS = in.since()
	if n.proc == nil || n.proc.exited() {
		f.Error = n.base + " is not running"
		c.event("fault %d %s: %s", p.N, p.Kind, f.Error)
		return f
	}
	f.PID = n.proc.pid
	c.event("fault %d %s: %s (%s, pid %d), %s", p.N, p.Kind, n.base, n.name, n.proc.pid, f.Target)
	var err error
	switch p.Kind {
	case FaultKill:
		err = in.down(ctx, end, &f, n, syscall.SIGKILL, nil)
	case FaultWipe:
		err = in.down(ctx, end, &f, n, syscall.SIGKILL, func() error {
			old := n.name
			if err := c.wipe(n); err != nil {
				return err
			}
			if n.name != old {
				f.NewIdentity = n.name
			}
			return nil
		})
	case FaultRestart, FaultDrain:
		err = in.down(ctx, end, &f, n, syscall.SIGTERM, nil)
	case FaultPause:
		err = in.pause(ctx, end, &f, n)
	case FaultPartition:
		err = in.partition(ctx, end, &f, n, nil)
	case FaultSplit:
		err = in.split(ctx, end, &f, n)
	case FaultOneway:
		err = in.oneway(ctx, end, &f, n)
	case FaultDiskStall:
		err = in.diskStall(ctx, end, &f, n)
	case FaultLag:
		err = in.lag(ctx, end, &f, n)
	case FaultDiskSlow:
		err = in.diskSlow(ctx, end, &f, n)
	default:
		err = fmt.Errorf("unknown fault %q", p.Kind)
	}
	if err == nil && f.NewIdentity != "" {
		// The old identity is gone for good: an operator replacing a lost
		// node forgets it, and the cluster re-creates what it held.
		if err = c.forget(ctx, n, f.Identity, 30*time.Second); err == nil {
			c.event("fault %d: %s forgotten", p.N, f.Identity)
		}
	}
	if ctx.Err() != nil {
		f.Error = "interrupted"
		return f
	}
	settled := c.converge(ctx, settleTimeout)
	if settled == nil {
		f.RecoveredS = in.since()
	}
	if err = errors.Join(err, settled); err != nil {
		f.Error = err.Error()
		c.event("fault %d %s: %v", p.N, p.Kind, err)
		return f
	}
	c.event("fault %d %s: recovered after %.1fs", p.N, p.Kind, f.RecoveredS-f.AtS)
	return f
}

// down ends n's process with sig, keeps it down for the fault's hold (cut
// short when end passes), runs between (if any) and starts it again.
func (in *injector) down(ctx, end context.Context, f *Fault, n *node, sig syscall.Signal, between func() error) error {
	timeout := 10 * time.Second
	if sig == syscall.SIGTERM {
		timeout = in.c.cfg.DrainTimeout + 15*time.Second
	}
	ended := n.proc.end(sig, timeout)
	if ended != nil {
		// A node that does not finish its drain in time is killed (and
		// that is a problem of the run), then started again as usual.
		_ = n.proc.kill()
	}
	n.proc = nil
	f.DownS = in.since()
	hold(ctx, end, f.Hold)
	if between != nil {
		if err := between(); err != nil {
			return err
		}
	}
	if err := in.c.start(ctx, n); err != nil {
		return err
	}
	f.BackS = in.since()
	return ended
}

// pause SIGSTOPs n for the fault's hold, then SIGCONTs it.
func (in *injector) pause(ctx, end context.Context, f *Fault, n *node) error {
	if err := in.c.stop(n); err != nil {
		return err
	}
	f.DownS = in.since()
	hold(ctx, end, f.Hold)
	if err := in.c.cont(n); err != nil {
		return err
	}
	f.BackS = in.since()
	if n.proc.exited() {
		return fmt.Errorf("%s exited while paused: %s", n.base, exitText(n.proc.err))
	}
	return nil
}

// partition cuts n and its mates (if any) off from every other running
// node, both ways, for the fault's hold, then heals every node.
func (in *injector) partition(ctx, end context.Context, f *Fault, n *node, mates []*node) error {
	return in.linkFault(ctx, end, f, n, mates, true, true, in.c.cut)
}

// oneway cuts the links between n and every other running node in the
// direction the fault's draw says, for its hold, then heals every node.
func (in *injector) oneway(ctx, end context.Context, f *Fault, n *node) error {
	out := f.Draw%2 == 0
	if out {
		f.Direction = "out"
		in.c.event("fault %d oneway: %s cannot reach the others", f.N, n.base)
	} else {
		f.Direction = "in"
		in.c.event("fault %d oneway: the others cannot reach %s", f.N, n.base)
	}
	return in.linkFault(ctx, end, f, n, nil, out, !out, in.c.cut)
}

// linkFault breaks the links between n's side (n and its mates) and the
// other running nodes with set (cut, or lag), told to each node the names
// of those it breaks its links to: on n's side when this, on the other
// side when that (both: both ways), for the fault's hold; then it mends
// every node (set with no names).
func (in *injector) linkFault(ctx, end context.Context, f *Fault, n *node, mates []*node, this, that bool,
	set func(ctx context.Context, o *node, names []string) error) error {
	c := in.c
	run := c.running()
	plan := cutPlan(run, append([]*node{n}, mates...), this, that)
	if plan == nil {
		return fmt.Errorf("%s has no other node to break its links to", n.base)
	}
	return in.holdFault(ctx, end, f, func() error {
		for _, o := range run {
			if names := plan[o]; len(names) > 0 {
				if err := set(ctx, o, names); err != nil {
					return err
				}
			}
		}
		return nil
	}, func(ctx context.Context) (err error) {
		for _, o := range c.running() {
			err = errors.Join(err, set(ctx, o, nil))
		}
		return err
	})
}

// holdFault begins a fault, holds it for the fault's hold (unless it
// failed to begin), then undoes it, even after a failed beginning, so
// that nothing stays broken; it notes when the fault began and ended.
func (in *injector) holdFault(ctx, end context.Context, f *Fault, begin func() error, undo func(context.Context) error) error {
	err := begin()
	f.DownS = in.since()
	if err == nil {
		hold(ctx, end, f.Hold)
	}
	err = errors.Join(err, undo(context.WithoutCancel(ctx)))
	f.BackS = in.since()
	return err
}

// cutPlan says, for a cut of side off from the other nodes of run, which
// nodes each node is told to cut: those of the other side, to each node
// of side when this, and side's, to each other node when that. It is nil
// when side is all of run.
func cutPlan(run, side []*node, this, that bool) map[*node][]string {
	var ours, theirs []string // the names on each side
	for _, o := range run {
		if slices.Contains(side, o) {
			ours = append(ours, o.name)
		} else {
			theirs = append(theirs, o.name)
		}
	}
	if len(theirs) == 0 {
		return nil
	}
	plan := map[*node][]string{}
	for _, o := range run {
		switch mine := slices.Contains(side, o); {
		case mine && this:
			plan[o] = theirs
		case !mine && that:
			plan[o] = ours
		}
	}
	return plan
}

// split is a partition of n and the mates splitSides draws for it.
func (in *injector) split(ctx, end context.Context, f *Fault, n *node) error {
	mates := splitSides(n, in.c.running(), f.Draw)
	for _, m := range mates {
		f.With = append(f.With, m.base)
	}
	if len(mates) > 0 {
		in.c.event("fault %d split: %s with %s on one side", f.N, n.base, strings.Join(f.With, ", "))
	}
	return in.partition(ctx, end, f, n, mates)
}

// splitSides draws, with seed, the nodes of running that go with n to its
// side of a split: as many as make that side (n included) half of running,
// or just under half (n alone of three).
func splitSides(n *node, running []*node, seed uint64) []*node {
	var others []*node
	for _, o := range running {
		if o != n {
			others = append(others, o)
		}
	}
	k := max(len(running)/2-1, 0)
	rng := rand.New(rand.NewPCG(seed, seed^0x5b117))
	rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	mates := others[:k]
	slices.SortFunc(mates, func(a, b *node) int { return strings.Compare(a.base, b.base) })
	return mates
}

// diskStall stalls n's store's writes for the fault's hold, then lets
// them run again, even when the stall failed half way.
func (in *injector) diskStall(ctx, end context.Context, f *Fault, n *node) error {
	return in.holdFault(ctx, end, f, func() error { return in.c.stallDisk(ctx, n, true) },
		func(ctx context.Context) error { return in.c.stallDisk(ctx, n, false) })
}

// lagSpec is a lag fault's setting: each way, what crosses a slowed link
// arrives Delay late plus up to Jitter, and Loss of the gossip packets
// are lost.
type lagSpec struct {
	Delay, Jitter time.Duration
	Loss          float64
}

// lagOf draws a lag from seed: a delay of 20 to 300 ms each way (a
// round trip of up to three of the fast timing's heartbeat ticks), a
// fifth of it as jitter, and 5 % of gossip packets lost.
func lagOf(seed uint64) lagSpec {
	rng := rand.New(rand.NewPCG(seed, seed^0x1a9))
	d := 20*time.Millisecond + time.Duration(rng.Int64N(281))*time.Millisecond
	return lagSpec{Delay: d, Jitter: d / 5, Loss: 0.05}
}

// lag slows the links between n and every other running node, both ways,
// for the fault's hold, then ends every node's lag.
func (in *injector) lag(ctx, end context.Context, f *Fault, n *node) error {
	l := lagOf(f.Draw)
	f.DelayMS, f.JitterMS, f.Loss = ms(l.Delay), ms(l.Jitter), l.Loss
	in.c.event("fault %d lag: %s's links %v late (+ up to %v), %.0f%% of gossip lost", f.N, n.base, l.Delay, l.Jitter, 100*l.Loss)
	return in.linkFault(ctx, end, f, n, nil, true, true, func(ctx context.Context, o *node, names []string) error {
		return in.c.lag(ctx, o, names, l)
	})
}

// syncDelayOf draws a slow disk's added time per sync from seed: 150 to
// 400 ms, well past the 100 ms at which a node counts a sync as slow.
func syncDelayOf(seed uint64) time.Duration {
	rng := rand.New(rand.NewPCG(seed, seed^0xd15c))
	return 150*time.Millisecond + time.Duration(rng.Int64N(251))*time.Millisecond
}

// diskSlow slows every sync of n's store for the fault's hold, then makes
// them fast again, even when slowing failed half way.
func (in *injector) diskSlow(ctx, end context.Context, f *Fault, n *node) error {
	d := syncDelayOf(f.Draw)
	f.DelayMS = ms(d)
	in.c.event("fault %d disk-slow: %s's syncs take %v longer", f.N, n.base, d)
	return in.holdFault(ctx, end, f, func() error { return in.c.slowDisk(ctx, n, d) },
		func(ctx context.Context) error { return in.c.slowDisk(ctx, n, 0) })
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// hold waits d, or until end or ctx ends.
func hold(ctx, end context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-end.Done():
	case <-ctx.Done():
	}
}

// removeData deletes the nodes' data directories (after a passing run).
func (c *cluster) removeData() error { return os.RemoveAll(filepath.Join(c.cfg.Out, "data")) }
