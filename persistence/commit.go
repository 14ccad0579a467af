package persistence

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The commit pipeline has two goroutines:
//
//   - the applier takes every queued request, checks each against its
//     scope's fence, merges the survivors into one Pebble batch and applies
//     it without waiting for the WAL sync (ApplyNoSyncWait);
//   - the syncer waits for each applied batch's sync in apply order and then
//     calls the requests' done callbacks in order.
//
// While one fsync is in flight the applier keeps applying, and Pebble's WAL
// writer folds the waiting batches into its next fsync, so one fsync serves
// many entries from many scopes. Callbacks for one scope run in the order
// its requests were submitted, so an actor acknowledges in segment order.

type request struct {
	scope Scope
	epoch uint64
	fence bool // raise the fence to epoch
	ops   []Op
	kind  reqKind
	// Import chunks (see Store.Import).
	records      []SnapshotRecord
	first, final bool
	// replace (Restore) may overwrite a served scope, with a higher epoch.
	replace bool
	out     *uint64 // reqRelease: receives the new epoch
	to      string  // reqRelease: the node the scope is released to
	done    func(error)
	// err refuses the request: set at submission for a malformed request
	// (which still waits its turn, so that callbacks stay in order) or by
	// the applier.
	err error
}

type reqKind uint8

const (
	reqAppend  reqKind = iota // an entry, or a fence when fence is set
	reqRelease                // fence one epoch up, marked released
	reqImport                 // one hand-off chunk
	reqDrop                   // delete a released scope's records
	reqBarrier                // nothing: done runs after every earlier request
)

// fenceState is the applier's view of one scope's fence.
type fenceState struct {
	epoch    uint64
	released bool
	to       string // released to this node
	// broken is set when an entry of this epoch was refused: the entries
	// after it are refused too, so a scope's log never has a hole. The
	// next fence clears it. (Kept in memory only: a restart reloads the
	// actor from what landed, which has no hole.)
	broken bool
}

type group struct {
	batch   *pebble.Batch // nil when every request was refused
	reqs    []*request
	applied int // requests written into batch
	start   time.Time
}

// maxFenceCache bounds the applier's cache of fences; the cache is only a
// cache (the fences live in the store), so it is dropped when full.
const maxFenceCache = 1 << 17

type committer struct {
	db   *pebble.DB
	opts Options

	mu       sync.Mutex // guards the fields below
	work     *sync.Cond // signalled when queue gains a request or closed is set
	space    *sync.Cond // signalled when queue shrinks
	queue    []*request
	closed   bool
	failed   error // the first commit error; every later request fails with it
	stopOnce sync.Once

	fences map[Scope]fenceState // owned by the applier goroutine
	groups chan *group          // applier → syncer, bounded
	wg     sync.WaitGroup
}

func newCommitter(db *pebble.DB, opts Options) *committer {
	c := &committer{
		db:     db,
		opts:   opts,
		fences: make(map[Scope]fenceState),
		groups: make(chan *group, 64),
	}
	c.work = sync.NewCond(&c.mu)
	c.space = sync.NewCond(&c.mu)
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.applyLoop() }()
	go func() { defer c.wg.Done(); c.syncLoop() }()
	return c
}

// submit queues r, blocking while the queue is full.
func (c *committer) submit(r *request) {
	c.mu.Lock()
	for len(c.queue) >= c.opts.MaxQueued && !c.closed {
		c.space.Wait()
	}
	if c.closed {
		c.mu.Unlock()
		r.done(ErrClosed)
		return
	}
	c.queue = append(c.queue, r)
	c.work.Signal()
	c.mu.Unlock()
}

// stop drains the queue, waits for outstanding syncs and stops both
// goroutines. It reports whether this call did the stopping.
func (c *committer) stop() bool {
	first := false
	c.stopOnce.Do(func() {
		first = true
		c.mu.Lock()
		c.closed = true
		c.work.Broadcast()
		c.space.Broadcast()
		c.mu.Unlock()
		c.wg.Wait()
	})
	return first
}

func (c *committer) applyLoop() {
	defer close(c.groups)
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closed {
			c.work.Wait()
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return
		}
		n := min(len(c.queue), c.opts.MaxBatch)
		reqs := make([]*request, n)
		copy(reqs, c.queue)
		c.queue = append(c.queue[:0], c.queue[n:]...)
		failed := c.failed
		c.space.Broadcast()
		c.mu.Unlock()

		c.groups <- c.apply(reqs, failed)
	}
}

func (c *committer) apply(reqs []*request, failed error) *group {
	g := &group{reqs: reqs, start: time.Now()}
	if failed != nil {
		for _, r := range reqs {
			r.err = failed
		}
		return g
	}
	if len(c.fences) > maxFenceCache {
		// Only a cache; but a broken epoch lives nowhere else, so it stays.
		for sc, fs := range c.fences {
			if !fs.broken {
				delete(c.fences, sc)
			}
		}
	}
	b := c.db.NewBatch()
	for _, r := range reqs {
		if r.kind == reqBarrier {
			continue // writes nothing; its callback waits its turn
		}
		if err := c.check(r); err != nil {
			r.err = err
			if r.kind == reqAppend && !r.fence {
				if fs, ferr := c.fence(r.scope); ferr == nil && r.epoch == fs.epoch {
					fs.broken = true
					c.fences[r.scope] = fs
				}
			}
			continue
		}
		// A request is checked in full before any of it is written: the
		// batch is shared, so a request refused half-way would leave its
		// first ops to land with the other requests.
		if err := c.write(b, r); err != nil {
			// Unreachable with Pebble's unindexed batches, whose writes do
			// not fail; if it happens the batch holds part of r, so none of
			// the group may land.
			return c.abandon(g, b, fmt.Errorf("persistence: batch: %w", err))
		}
		g.applied++
	}
	if g.applied == 0 {
		b.Close()
		return g
	}
	if err := c.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		err = fmt.Errorf("persistence: apply: %w", err)
		c.fail(err)
		return c.abandon(g, b, err)
	}
	g.batch = b
	return g
}

// abandon drops a group's batch unapplied and fails every request of it
// not already refused.
func (c *committer) abandon(g *group, b *pebble.Batch, err error) *group {
	b.Close()
	clear(c.fences) // the cache may hold fences that never landed
	for _, r := range g.reqs {
		if r.err == nil {
			r.err = err
		}
	}
	g.applied = 0
	return g
}

// check decides whether r may land, against its scope's fence as left by
// every request applied before it, without writing anything.
func (c *committer) check(r *request) error {
	if r.err != nil {
		return r.err
	}
	if err := r.scope.check(); err != nil {
		return err
	}
	if r.kind == reqAppend && !r.fence {
		for _, op := range r.ops {
			if op.Table == TableFence {
				return fmt.Errorf("%w: entries may not write the fence", ErrInvalid)
			}
		}
	}
	fs, err := c.fence(r.scope)
	if err != nil {
		return err
	}
	cur := fs.epoch
	switch r.kind {
	case reqRelease:
		return nil
	case reqDrop:
		if !fs.released {
			return ErrFenced // never drop a scope that is served here
		}
		return nil
	case reqImport:
		switch {
		case r.replace: // a restore: above whatever fence there is
			if r.epoch <= cur {
				return ErrFenced
			}
		case r.first:
			if cur > 0 && !fs.released {
				return ErrFenced // never overwrite a scope served here
			}
			cur = 0 // the first chunk clears the scope, fence included
		}
		if r.final && r.epoch <= cur {
			return ErrFenced
		}
		return nil
	}
	switch {
	case r.fence:
		if r.epoch <= cur {
			return ErrFenced
		}
	case r.epoch == 0 || r.epoch != cur || fs.released || fs.broken:
		return ErrFenced
	}
	return nil
}

// write adds a checked request to b.
func (c *committer) write(b *pebble.Batch, r *request) error {
	switch r.kind {
	case reqRelease:
		next := c.fences[r.scope].epoch + 1
		if r.out != nil {
			*r.out = next
		}
		return c.setFence(b, r.scope, fenceState{epoch: next, released: true, to: r.to})
	case reqDrop:
		lower, upper := r.scope.dataBounds()
		return b.DeleteRange(lower, upper, nil)
	case reqImport:
		return c.writeImport(b, r)
	}
	if r.fence {
		return c.setFence(b, r.scope, fenceState{epoch: r.epoch})
	}
	for _, op := range r.ops {
		var err error
		key := r.scope.key(op.Table, op.Key)
		switch {
		case op.Delete && op.DeleteTo != nil:
			err = b.DeleteRange(key, r.scope.key(op.Table, op.DeleteTo), nil)
		case op.Delete:
			err = b.Delete(key, nil)
		default:
			err = b.Set(key, op.Value, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeImport writes one hand-off chunk (see Store.Import).
func (c *committer) writeImport(b *pebble.Batch, r *request) error {
	if r.first {
		lower, upper := r.scope.scopeBounds()
		if err := b.DeleteRange(lower, upper, nil); err != nil {
			return err
		}
		c.fences[r.scope] = fenceState{}
	}
	for _, rec := range r.records {
		if rec.Table == TableFence {
			continue
		}
		if err := b.Set(r.scope.key(rec.Table, rec.Key), rec.Value, nil); err != nil {
			return err
		}
	}
	if !r.final {
		return nil
	}
	return c.setFence(b, r.scope, fenceState{epoch: r.epoch})
}

func (c *committer) setFence(b *pebble.Batch, sc Scope, fs fenceState) error {
	if err := b.Set(sc.key(TableFence, nil), fenceValue(fs), nil); err != nil {
		return err
	}
	c.fences[sc] = fs
	return nil
}

// fence returns the scope's current fence, including fences set by batches
// applied but not yet synced (the cache holds them; a cache miss reads the
// memtable, which holds them too).
func (c *committer) fence(sc Scope) (fenceState, error) {
	if fs, ok := c.fences[sc]; ok {
		return fs, nil
	}
	v, closer, err := c.db.Get(sc.key(TableFence, nil))
	var fs fenceState
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fs, err
	default:
		fs, _ = parseFence(v)
		closer.Close()
	}
	c.fences[sc] = fs
	return fs, nil
}

func (c *committer) fail(err error) {
	c.mu.Lock()
	if c.failed == nil {
		c.failed = err
	}
	c.mu.Unlock()
}

func (c *committer) syncLoop() {
	for g := range c.groups {
		var err error
		if g.batch != nil {
			err = g.batch.SyncWait()
			g.batch.Close()
			if err != nil {
				err = fmt.Errorf("persistence: sync: %w", err)
				c.fail(err)
			}
		}
		// Report the group before its callbacks, so that whoever has seen
		// a callback has seen its group counted too.
		if c.opts.OnCommit != nil && g.batch != nil && err == nil {
			c.opts.OnCommit(time.Since(g.start), g.applied)
		}
		for _, r := range g.reqs {
			e := r.err
			if e == nil {
				e = err
			}
			r.done(e)
		}
	}
}
