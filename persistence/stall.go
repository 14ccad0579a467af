package persistence

import (
	"sync/atomic"
	"time"
)

// A stalled disk, for fault injection (serve --fault-injection, the
// chaos command's disk-stall fault): while the store is stalled, every
// write and sync of its files blocks, as they do on a disk that stops
// answering (a failing device, a saturated network volume); reads of what
// is cached or already on disk go on. Resuming releases them all, in no
// particular order, and the store carries on as if the disk had been slow.
//
// A slow disk, for fault injection too (the chaos command's disk-slow
// fault): while SlowSyncs has set a delay, every sync of the store's
// files takes that much longer.
//
// A store that is never stalled or slowed pays one atomic load per write
// and two per sync.

// stallGate blocks writes while it holds a channel; closing the channel
// releases them. slow delays syncs.
type stallGate struct {
	held atomic.Pointer[chan struct{}]
	slow atomic.Int64 // nanoseconds added to every sync
}

// wait blocks while the gate is held.
func (g *stallGate) wait() {
	if ch := g.held.Load(); ch != nil {
		<-*ch
	}
}

// waitSync is wait for a sync, which a slow disk also delays.
func (g *stallGate) waitSync() {
	g.wait()
	if d := g.slow.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
}

// SlowSyncs makes every sync of the store's files take d longer, as on a
// slow or overloaded disk (0: as fast as the disk is).
func (s *Store) SlowSyncs(d time.Duration) { s.guard.stall.slow.Store(int64(d)) }

// SyncDelay is what SlowSyncs adds to every sync now (0: nothing).
func (s *Store) SyncDelay() time.Duration { return time.Duration(s.guard.stall.slow.Load()) }

// StallWrites makes the store's writes and syncs block until ResumeWrites.
// It reports whether they were running (false: stalled already).
func (s *Store) StallWrites() bool {
	ch := make(chan struct{})
	return s.guard.stall.held.CompareAndSwap(nil, &ch)
}

// ResumeWrites releases the writes StallWrites blocked, and lets new ones
// run. It reports whether the store was stalled.
func (s *Store) ResumeWrites() bool {
	ch := s.guard.stall.held.Swap(nil)
	if ch != nil {
		close(*ch)
	}
	return ch != nil
}

// WritesStalled reports whether StallWrites holds the store's writes.
func (s *Store) WritesStalled() bool { return s.guard.stall.held.Load() != nil }
