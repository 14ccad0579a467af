// Package shard replicates a node's shards with Raft (go.etcd.io/raft/v3).
//
// One Engine per node owns every local replica's RawNode and drives them
// all from one loop. A round of the loop takes every group's Ready and
// handles them together: incoming snapshots are ingested, committed
// entries already on disk are applied and answered, the raft state of all
// groups (entries, hard states) goes into one Pebble batch committed with
// at most one fsync, messages that promise durable state are sent only
// after that (a leader's appends go before it), batched per destination
// node, the other committed entries of all groups are applied in a second
// batch (with each group's applied state), and the groups advance.
// Proposals, reads and activations wait for that round and are answered on
// the loop's goroutine. See RAFT-NOTES.md for the rules this follows.
package shard

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// Errors. Every one of them means "not done here, now": callers answer
// unavailable and the client retries.
var (
	// ErrNotLeader: this node does not lead the shard (see NotLeaderError).
	ErrNotLeader = errors.New("shard: not the leader")
	// ErrDropped: raft refused the proposal (an election or a leadership
	// transfer is under way, or too much is uncommitted).
	ErrDropped = errors.New("shard: proposal dropped by raft")
	// ErrLost: the leadership the proposal or read was made under ended
	// before it completed. A proposal may still have committed.
	ErrLost = errors.New("shard: leadership changed before completion")
	// ErrBusy: the engine's queue is full.
	ErrBusy = errors.New("shard: engine busy")
	// ErrTimeout: no answer in time (a read or proposal lost in transit).
	ErrTimeout = errors.New("shard: timed out")
	// ErrStopped: the engine has stopped.
	ErrStopped = errors.New("shard: engine stopped")
	// ErrTooLarge: the command exceeds MaxCommandBytes.
	ErrTooLarge = errors.New("shard: command too large")
	// ErrRejected: the entry applied without effect: its term was not the
	// one it was proposed under, or the state machine refused it.
	ErrRejected = errors.New("shard: entry rejected when applied")
)

// NotLeaderError says who leads the shard, as far as this node knows.
type NotLeaderError struct {
	Shard  uint32
	Leader string // node name; "" when unknown
	Term   uint64
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return fmt.Sprintf("shard %d: no leader known here", e.Shard)
	}
	return fmt.Sprintf("shard %d: led by node %s (term %d)", e.Shard, e.Leader, e.Term)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// StateMachine applies committed commands.
type StateMachine interface {
	// Apply writes the effects of one committed command of shard into b.
	// It must be deterministic: every replica applies the same commands in
	// the same order. An error rejects the command on every replica alike
	// (nothing of it may be written).
	Apply(b *pebble.Batch, shard uint32, cmd []byte) error
}

// Observer hears of leadership changes. Calls come from the engine's
// loop (or, while the disk is stalled, from its watchdog acting for it:
// never two at once) and must not block.
type Observer interface {
	LeaderChanged(st Status)
}

// Config configures an Engine.
type Config struct {
	DB *pebble.DB
	// Snapshots is where incoming snapshots are built (on DB's filesystem).
	Snapshots raftstore.Env
	// Cluster is the cluster id: traffic of other clusters is dropped.
	Cluster string
	// Node and Store identify this node and its data directory.
	Node  string
	Store uint64

	Transport    Transport
	StateMachine StateMachine
	Observer     Observer // may be nil

	Timing Timing
	// MaxSizePerMsg bounds the entries of one append message (one entry
	// always goes). MaxInflightMsgs and MaxInflightBytes bound what a
	// leader has in flight to one follower.
	MaxSizePerMsg    uint64
	MaxInflightMsgs  int
	MaxInflightBytes uint64
	// MaxUncommittedBytes bounds what a leader holds uncommitted: past it
	// proposals are dropped (back pressure).
	MaxUncommittedBytes uint64
	// MaxCommandBytes bounds one command.
	MaxCommandBytes int
	// MaxBatchBytes bounds one Batch to a node; a round's messages to a
	// node are split across batches under it.
	MaxBatchBytes int
	// MaxQueuedProposals and MaxQueuedBatches bound the engine's input
	// queues; past them proposals fail with ErrBusy and batches are
	// dropped.
	MaxQueuedProposals int
	MaxQueuedBatches   int
	// KeepEntries is how many applied entries a replica keeps in its log
	// for followers that lag; the log is truncated when it holds twice as
	// many.
	KeepEntries uint64
	// MaxSnapshotSends and MaxSnapshotReceives bound the snapshots this
	// node streams at once in each direction; SnapshotChunkBytes bounds one
	// chunk.
	MaxSnapshotSends    int
	MaxSnapshotReceives int
	SnapshotChunkBytes  int
	// RequestTimeout bounds how long a proposal or read waits.
	RequestTimeout time.Duration
	// Replicas is how many replicas each shard should have (fewer while
	// fewer hosts exist).
	Replicas int
	// ReplaceDeadAfter is how long a host may stay dead before its replicas
	// are re-created on other hosts.
	ReplaceDeadAfter time.Duration
	// Admit, when set, decides whether a proposal of n bytes may be made
	// now (the store's disk guard): a refusal fails it at once.
	Admit func(n int64) error
	// OnFatal is called (once, from the loop) when the node's storage fails
	// and the engine stops.
	OnFatal func(error)
	// OnRound, when set, is called (from the loop) after every round that
	// handled Readys, with its duration (persisting, sending, applying:
	// what every acknowledgement waits for) and whether it fsynced.
	OnRound func(d time.Duration, synced bool)
	// OnStall, when set, is called when a round's write has not finished
	// after Timing.StallAfter (stalled, after that long; from the
	// watchdog) and when it finishes (not stalled, after its whole time;
	// from the loop): see stall.go.
	OnStall func(stalled bool, d time.Duration)
	// OnSyncedWrite, when set, is called (from the loop, once Start ran)
	// after every round's write that fsynced, with its duration: how fast
	// the disk is, apart from the rest of the round.
	OnSyncedWrite func(d time.Duration)
	Logger        *slog.Logger
}

// Timing is a failure-detection preset: the raft tick and the heartbeat
// and election timeouts in ticks.
type Timing struct {
	Tick           time.Duration
	HeartbeatTicks int
	ElectionTicks  int
}

// Presets (RAFT-NOTES §8). TimingFast elects a new leader about a second
// after one dies on loopback; TimingLAN keeps etcd's defaults.
var (
	TimingFast = Timing{Tick: 50 * time.Millisecond, HeartbeatTicks: 1, ElectionTicks: 10}
	TimingLAN  = Timing{Tick: 100 * time.Millisecond, HeartbeatTicks: 1, ElectionTicks: 10}
)

// ElectionTimeout returns the shortest time a follower waits for a leader.
func (t Timing) ElectionTimeout() time.Duration { return time.Duration(t.ElectionTicks) * t.Tick }

// StallAfter returns how long a round's write may take before the disk
// counts as stalled (stall.go): two election timeouts, by when the
// followers of a leader stuck in it have elected another.
func (t Timing) StallAfter() time.Duration { return 2 * t.ElectionTimeout() }

// DefaultConfig returns the defaults for the fields not about the node.
func DefaultConfig() Config {
	return Config{
		Timing:              TimingLAN,
		MaxSizePerMsg:       1 << 20,
		MaxInflightMsgs:     256,
		MaxInflightBytes:    8 << 20,
		MaxUncommittedBytes: 64 << 20,
		MaxCommandBytes:     30 << 20,
		MaxBatchBytes:       16 << 20,
		MaxQueuedProposals:  1 << 15,
		MaxQueuedBatches:    4096,
		KeepEntries:         10000,
		MaxSnapshotSends:    2,
		MaxSnapshotReceives: 4,
		SnapshotChunkBytes:  1 << 20,
		RequestTimeout:      10 * time.Second,
		Replicas:            3,
		ReplaceDeadAfter:    5 * time.Minute,
	}
}

func (c *Config) withDefaults() {
	d := DefaultConfig()
	if c.Timing.Tick <= 0 {
		c.Timing = d.Timing
	}
	setDefault(&c.MaxSizePerMsg, d.MaxSizePerMsg)
	setDefault(&c.MaxInflightMsgs, d.MaxInflightMsgs)
	setDefault(&c.MaxInflightBytes, d.MaxInflightBytes)
	setDefault(&c.MaxUncommittedBytes, d.MaxUncommittedBytes)
	setDefault(&c.MaxCommandBytes, d.MaxCommandBytes)
	setDefault(&c.MaxBatchBytes, d.MaxBatchBytes)
	setDefault(&c.MaxQueuedProposals, d.MaxQueuedProposals)
	setDefault(&c.MaxQueuedBatches, d.MaxQueuedBatches)
	setDefault(&c.KeepEntries, d.KeepEntries)
	setDefault(&c.MaxSnapshotSends, d.MaxSnapshotSends)
	setDefault(&c.MaxSnapshotReceives, d.MaxSnapshotReceives)
	setDefault(&c.SnapshotChunkBytes, d.SnapshotChunkBytes)
	setDefault(&c.RequestTimeout, d.RequestTimeout)
	setDefault(&c.Replicas, d.Replicas)
	setDefault(&c.ReplaceDeadAfter, d.ReplaceDeadAfter)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func setDefault[T int | uint64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Engine drives every local replica of the node's shards.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	proposer uint64 // identifies this life of the engine in entries

	in inputs

	// Owned by the loop.
	groups map[uint32]*group
	shards []uint32 // the keys of groups, sorted (see sortedShards)
	// shardsStale says shards must be rebuilt: a group was added or removed.
	shardsStale bool
	nextID      uint64 // proposal and read ids
	ticks       int    // ticks elapsed since the last round
	done        []func()
	lastScan    time.Time
	lastSweep   time.Time
	lastLeases  time.Time // when ended leases were last dropped
	lastPlace   time.Time

	// The watchdog of the round's write (stall.go).
	stall stallWatch

	hosts      hostSet
	membership func(shard uint32) (Membership, bool) // guarded by hosts.mu
	fatalErr   error

	status statusTable
	snaps  snapshots
	// clock and spawn are replaced by the deterministic test harness.
	clock func() time.Time
	spawn func(func())

	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New loads every replica the node holds. Call Start to run the loop.
func New(cfg Config) (*Engine, error) {
	cfg.withDefaults()
	if cfg.DB == nil || cfg.Transport == nil || cfg.StateMachine == nil || cfg.Node == "" || cfg.Store == 0 {
		return nil, errors.New("shard: config needs DB, Transport, StateMachine, Node and Store")
	}
	e := &Engine{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "raft"),
		proposer: rand.Uint64() | 1,
		groups:   make(map[uint32]*group),
		clock:    time.Now,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	e.spawn = func(fn func()) { e.wg.Go(fn) }
	e.status.init()
	e.snaps.init(cfg.MaxSnapshotSends)
	if err := raftstore.RemoveSnapshotFiles(cfg.Snapshots); err != nil {
		return nil, fmt.Errorf("shard: removing old snapshot files: %w", err)
	}
	if err := e.loadAll(); err != nil {
		return nil, err
	}
	return e, nil
}

// Start runs the loop until Stop.
func (e *Engine) Start() {
	e.notify() // a first round at once: a lone voter leads without waiting for a tick
	e.stall.on = true
	e.wg.Go(e.watchWrites)
	e.wg.Go(e.run)
	e.wg.Go(func() { e.snaps.sweepLoop(e) })
}

// Stop ends the loop and every snapshot stream, failing whatever waits.
// It is safe to call more than once.
func (e *Engine) Stop() {
	e.stopOnce.Do(func() {
		close(e.stop)
		e.snaps.cancel() // outgoing streams end at once
		e.wg.Wait()
		e.failAll(ErrStopped)
		e.snaps.abortAll()
	})
}

func (e *Engine) run() {
	t := time.NewTicker(e.cfg.Timing.Tick)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.ticks++
		case <-e.wake:
		}
		e.round()
		if e.fatalErr != nil {
			return
		}
	}
}

// notify wakes the loop.
func (e *Engine) notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// fatal stops the engine after a storage failure: nothing it holds may be
// trusted to be durable any more.
func (e *Engine) fatal(err error) {
	if e.fatalErr != nil {
		return
	}
	e.fatalErr = err
	e.log.Error("raft storage failed; replication stopped on this node", "err", err)
	e.failAll(ErrStopped)
	if e.cfg.OnFatal != nil {
		e.cfg.OnFatal(err)
	}
}

// Err returns the storage failure that stopped the engine, if any.
func (e *Engine) Err() error {
	e.in.mu.Lock()
	defer e.in.mu.Unlock()
	return e.in.fatal
}
