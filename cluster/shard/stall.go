package shard

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// A stalled disk.
//
// A round writes its raft state and waits for the fsync before it sends
// the votes and acknowledgements that promise it (round.go). On a disk
// that stops answering (a failing device, a saturated network volume)
// that write does not return, and without care the loop waits in it with
// everything else on the node: proposals, reads and activations wait for
// RequestTimeout, and the node goes on telling the cluster that it leads
// its shards while its followers, hearing no heartbeats, elect others
// within an election timeout. Requests routed here wait out the stall.
//
// So once Start has run, a watchdog goroutine looks at the round's
// synced write a few times per Timing.StallAfter. A write not done after
// StallAfter declares the disk stalled until it is done, and the watchdog
// acts for the loop meanwhile:
//
//   - every leadership of this node ends as far as the node is concerned:
//     the status table and the observer say this node leads nothing, so
//     the cluster routes to the leaders the other replicas elect, and
//     then waiters fail with ErrLost (a proposal may still commit, as with
//     any change of leader; clients retry with their idempotency keys);
//   - proposals, reads and activations that come meanwhile fail at once
//     with ErrStalled; incoming raft messages and the rest stay queued
//     (bounded as always: past MaxQueuedBatches batches are dropped, and
//     raft resends).
//
// The watchdog touches the loop's state only while the loop is inside the
// write and holding nothing, under stallWatch.mu, which the loop takes
// before it goes on after the write: the two never run at once. (The
// write's start, stored atomically by the loop after everything it wrote
// before, and loaded by the watchdog, orders the loop's writes before the
// watchdog's reads.) The hot path pays two atomic stores and an
// uncontended lock per synced round; there is no hand-off.
//
// When the write is done, the round goes on as usual; raft's own state
// was never touched. After the round every group that stopped leading
// takes raft's view up again (syncResigned): a replica that still leads
// (none other was elected: a lone replica, or the stall was short) leads
// again as after any change of leader, and one whose followers elected
// another steps down when it hears of the new term, as a paused leader
// does.
//
// The engine stops only between rounds: Stop during a stall waits for
// the disk (the node bounds that wait, and exits without it).

// ErrStalled: this node's disk has not finished a write for longer than
// Timing.StallAfter; the shard's other replicas lead meanwhile.
var ErrStalled = errors.New("shard: this node's disk is not answering")

// stallWatch is the watchdog's state.
type stallWatch struct {
	on bool // Start ran: the watchdog runs (loop only)

	// writing is when the round's synced write began (Unix nanoseconds),
	// 0 when none is under way. The loop stores it; the watchdog loads it.
	writing atomic.Int64
	stalled atomic.Bool

	// mu is held by the watchdog while it acts for the loop, and by the
	// loop when it comes out of a write.
	mu       sync.Mutex
	began    time.Time // when the stalled write began (under mu)
	resigned []*group  // groups whose leadership a stall ended
}

// commitRound commits a round's raft state, watched by the watchdog when
// it is synced and the engine was started.
func (e *Engine) commitRound(b *pebble.Batch, sync bool) error {
	if !e.stall.on || !sync {
		return raftstore.Commit(b, sync)
	}
	start := time.Now()
	e.stall.writing.Store(start.UnixNano())
	err := raftstore.Commit(b, sync)
	e.stall.mu.Lock()
	e.stall.writing.Store(0)
	if e.stall.stalled.Load() {
		e.stallEnded(time.Since(e.stall.began))
	}
	e.stall.mu.Unlock()
	if e.cfg.OnSyncedWrite != nil {
		e.cfg.OnSyncedWrite(time.Since(start))
	}
	return err
}

// watchWrites is the watchdog: until the engine stops, it looks at the
// round's write every tenth of StallAfter, and while the disk is stalled
// it refuses what comes for the loop as it comes.
func (e *Engine) watchWrites() {
	after := e.cfg.Timing.StallAfter()
	t := time.NewTicker(after / 10)
	defer t.Stop()
	for {
		wake := e.wake
		if !e.stall.stalled.Load() {
			wake = nil // the loop's own, while it runs
		}
		select {
		case <-e.stop:
			return
		case <-t.C:
		case <-wake:
		}
		e.stall.mu.Lock()
		start := e.stall.writing.Load()
		switch {
		case start != 0 && !e.stall.stalled.Load() && time.Since(time.Unix(0, start)) >= after:
			e.stall.began = time.Unix(0, start)
			e.stallBegan(after)
		case start != 0 && e.stall.stalled.Load():
			e.refuseStalled()
		case !e.stall.stalled.Load() && wake != nil:
			e.notify() // the write ended just now: the loop's wake-up, taken here, is given back
		}
		e.stall.mu.Unlock()
	}
}

// stallBegan ends every leadership of this node as far as the node is
// concerned, and refuses what waits for the loop. The watchdog calls it,
// for the loop, under stall.mu.
func (e *Engine) stallBegan(after time.Duration) {
	e.stall.stalled.Store(true)
	e.log.Warn("the disk has not finished a write: leading nothing and refusing proposals until it does", "after", after)
	for _, s := range e.sortedShards() {
		g := e.groups[s]
		if !g.leader {
			continue
		}
		// Said first, so that those told below retry elsewhere.
		e.stall.resigned = append(e.stall.resigned, g)
		g.leader, g.lead = false, 0
		g.changed = true
		st := e.statusOf(g)
		e.status.set(st)
		if e.cfg.Observer != nil {
			e.cfg.Observer.LeaderChanged(st)
		}
		g.failWaiters(ErrLost)
	}
	e.refuseStalled()
	if e.cfg.OnStall != nil {
		e.cfg.OnStall(true, after)
	}
}

// stallEnded notes that the stalled write is done, after d (the loop,
// under stall.mu).
func (e *Engine) stallEnded(d time.Duration) {
	e.stall.stalled.Store(false)
	e.log.Warn("the disk finished its write: taking proposals again", "after", d)
	if e.cfg.OnStall != nil {
		e.cfg.OnStall(false, d)
	}
	e.notify() // what stayed queued meanwhile: a round for it at once
}

// syncResigned takes up raft's view again, after a stall, of the groups
// whose leadership the stall ended here: those without a Ready in the
// round were not looked at by afterReady, and a lone replica may have
// none for a long time.
func (e *Engine) syncResigned() {
	for _, g := range e.stall.resigned {
		if e.groups[g.shard] == g {
			e.syncLeader(g)
		}
	}
	clear(e.stall.resigned)
	e.stall.resigned = e.stall.resigned[:0]
}

// Stalled reports whether this node's disk has not finished a round's
// write for longer than Timing.StallAfter: it leads nothing meanwhile.
func (e *Engine) Stalled() bool { return e.stall.stalled.Load() }

// refuseStalled fails the proposals, reads and activations queued for
// the loop with ErrStalled, and leaves the rest queued.
func (e *Engine) refuseStalled() {
	e.in.mu.Lock()
	q := queued{props: e.in.props, reads: e.in.reads, leads: e.in.leads}
	e.in.props, e.in.reads, e.in.leads = nil, nil, nil
	e.in.mu.Unlock()
	q.refuse(ErrStalled)
}
