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
//
// Before each group the applier asks the disk guard (disk.go) whether it
// may write; while it may not, every request but a barrier is refused with
// ErrUnwritable, and nothing reaches Pebble. A failed apply or sync means
// Pebble's log is broken: the guard refuses writes and, once the disk has
// room, re-opens the database on the applier goroutine (reqReopen).

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
	reqNode                   // a node-local record (ops hold one put)
	reqReopen                 // re-open the database (see Store.reopen)
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
	// flushed, when set, marks no group: the syncer closes it once every
	// group before it is done.
	flushed chan struct{}
}

// scopeEpoch names an epoch of a scope whose entry failed to sync.
type scopeEpoch struct {
	scope Scope
	epoch uint64
}

// maxFenceCache bounds the applier's cache of fences; the cache is only a
// cache (the fences live in the store), so it is dropped when full.
const maxFenceCache = 1 << 17

type committer struct {
	db    *pebble.DB // owned by the applier goroutine (swapped by a re-open)
	opts  Options
	guard *diskGuard
	// reopen closes and re-opens the database, returning the new one
	// (Store.reopenDB). It runs on the applier goroutine.
	reopen func() (*pebble.DB, error)

	mu    sync.Mutex // guards the fields below
	work  *sync.Cond // signalled when queue gains a request or closed is set
	space *sync.Cond // signalled when queue shrinks
	queue []*request
	// unsynced are epochs whose entry failed to sync: their later
	// entries must be refused like those after a refused one (the
	// applier merges them into fences before its next group).
	unsynced []scopeEpoch
	closed   bool
	// fatal is set when Pebble panicked under the applier: the database
	// can be neither written nor closed; only a restart helps.
	fatal    error
	stopOnce sync.Once

	fences map[Scope]fenceState // owned by the applier goroutine
	groups chan *group          // applier → syncer, bounded
	wg     sync.WaitGroup
}

func newCommitter(db *pebble.DB, opts Options, guard *diskGuard, reopen func() (*pebble.DB, error)) *committer {
	c := &committer{
		db:     db,
		opts:   opts,
		guard:  guard,
		reopen: reopen,
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
		if c.queue[0].kind == reqReopen {
			n = 1 // alone, so that it runs between groups
		} else {
			for i, r := range c.queue[:n] {
				if r.kind == reqReopen {
					n = i // the groups before it go first
					break
				}
			}
		}
		reqs := make([]*request, n)
		copy(reqs, c.queue)
		c.queue = append(c.queue[:0], c.queue[n:]...)
		unsynced := c.unsynced
		c.unsynced = nil
		c.space.Broadcast()
		c.mu.Unlock()

		c.breakEpochs(unsynced)
		if reqs[0].kind == reqReopen {
			reqs[0].err = c.reopenDB()
			c.groups <- &group{reqs: reqs, start: time.Now()}
			continue
		}
		c.groups <- c.apply(reqs)
	}
}

// breakEpochs marks epochs whose entries failed to sync as broken, like a
// refused entry's (see fenceState). It runs on the applier goroutine.
func (c *committer) breakEpochs(unsynced []scopeEpoch) {
	for _, se := range unsynced {
		if fs, err := c.fence(se.scope); err == nil && fs.epoch == se.epoch {
			fs.broken = true
			c.fences[se.scope] = fs
		}
	}
}

// reopenDB re-opens the database after its log failed. It waits until
// the syncer is done with every group of the old database, then has the
// store re-open it. Fences cached from the old database go, but for the
// broken epochs the new one still has.
func (c *committer) reopenDB() error {
	c.mu.Lock()
	fatal := c.fatal
	c.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	flushed := make(chan struct{})
	c.groups <- &group{flushed: flushed}
	<-flushed
	c.mu.Lock()
	unsynced := c.unsynced
	c.unsynced = nil
	c.mu.Unlock()
	c.breakEpochs(unsynced)
	db, err := c.reopen()
	c.db = db // nil when the re-open failed: nothing may touch the old one
	if err != nil {
		return err
	}
	old := c.fences
	c.fences = make(map[Scope]fenceState)
	for sc, fs := range old {
		if !fs.broken {
			continue
		}
		if cur, err := c.fence(sc); err == nil && cur.epoch == fs.epoch {
			cur.broken = true
			c.fences[sc] = cur
		} else {
			delete(c.fences, sc)
		}
	}
	return nil
}

func (c *committer) apply(reqs []*request) *group {
	g := &group{reqs: reqs, start: time.Now()}
	if len(c.fences) > maxFenceCache {
		// Only a cache; but a broken epoch lives nowhere else, so it stays.
		for sc, fs := range c.fences {
			if !fs.broken {
				delete(c.fences, sc)
			}
		}
	}
	writes := false
	for _, r := range reqs {
		writes = writes || r.kind != reqBarrier
	}
	if !writes {
		return g // barriers only: nothing to ask the disk
	}
	if err := c.guard.err(); err != nil {
		for _, r := range reqs {
			if r.kind != reqBarrier {
				c.refuse(r, err)
			}
		}
		return g
	}
	b := c.db.NewBatch()
	for _, r := range reqs {
		if r.kind == reqBarrier {
			continue // writes nothing; its callback waits its turn
		}
		if err := c.check(r); err != nil {
			c.refuse(r, err)
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
	if err := c.guard.admit(int64(b.Len())); err != nil {
		// Nothing of the group lands: every request of it is refused.
		b.Close()
		for _, r := range g.reqs {
			if r.kind != reqBarrier && r.err == nil {
				c.refuse(r, err)
			}
		}
		g.applied = 0
		return g
	}
	if err := c.applyBatch(b); err != nil {
		err = fmt.Errorf("persistence: apply: %w", err)
		c.guard.poison(err)
		return c.abandon(g, b, err)
	}
	g.batch = b
	return g
}

// refuse refuses r with err. A refused entry breaks its epoch: the entries
// after it are refused too, so a scope's log never has a hole.
func (c *committer) refuse(r *request, err error) {
	if r.err == nil {
		r.err = err
	}
	if r.kind != reqAppend || r.fence {
		return
	}
	switch fs, ferr := c.fence(r.scope); {
	case ferr == nil && r.epoch == fs.epoch:
		fs.broken = true
		c.fences[r.scope] = fs
	case ferr != nil:
		// The database cannot say now (it failed to re-open): the epoch is
		// taken as broken, and the re-open checks it against the fence.
		c.fences[r.scope] = fenceState{epoch: r.epoch, broken: true}
	}
}

// applyBatch applies b without waiting for its sync. Pebble panics when
// its log failed under it in a way it cannot report (the guard keeps the
// applier from getting there); the panic is turned into a fatal error:
// the database is left as it is, and only a restart helps.
func (c *committer) applyBatch(b *pebble.Batch) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the store failed (%v): restart the node", p)
			c.mu.Lock()
			c.fatal = err
			c.mu.Unlock()
			c.guard.poison(err)
		}
	}()
	return c.db.ApplyNoSyncWait(b, pebble.Sync)
}

// abandon drops a group's batch unapplied and fails every request of it
// not already refused.
func (c *committer) abandon(g *group, b *pebble.Batch, err error) *group {
	if c.fatalErr() == nil {
		b.Close() // (after a panic Pebble may still hold it)
	}
	for sc, fs := range c.fences {
		if !fs.broken {
			delete(c.fences, sc) // the cache may hold fences that never landed
		}
	}
	for _, r := range g.reqs {
		if r.err == nil {
			c.refuse(r, err)
		}
	}
	g.applied = 0
	return g
}

func (c *committer) fatalErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatal
}

// check decides whether r may land, against its scope's fence as left by
// every request applied before it, without writing anything.
func (c *committer) check(r *request) error {
	if r.err != nil {
		return r.err
	}
	if r.kind == reqNode {
		return nil
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
	case reqNode:
		op := r.ops[0]
		return b.Set(Scope{Kind: KindNode}.key(TableMeta, op.Key), op.Value, nil)
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
	if c.db == nil {
		return fenceState{}, fmt.Errorf("%w: the store is re-opening", ErrUnwritable)
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

func (c *committer) syncLoop() {
	for g := range c.groups {
		if g.flushed != nil {
			close(g.flushed)
			continue
		}
		var err error
		if g.batch != nil {
			err = g.batch.SyncWait()
			g.batch.Close()
			if err != nil {
				err = fmt.Errorf("persistence: sync: %w", err)
				c.guard.poison(err)
				c.unsyncedGroup(g)
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

// unsyncedGroup records the epochs of a group's entries that failed to
// sync, for the applier to break.
func (c *committer) unsyncedGroup(g *group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range g.reqs {
		if r.err == nil && r.kind == reqAppend && !r.fence {
			c.unsynced = append(c.unsynced, scopeEpoch{r.scope, r.epoch})
		}
	}
}
