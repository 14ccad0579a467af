package persistence

import "sync/atomic"

// A stalled disk, for fault injection (serve --fault-injection, the
// chaos command's disk-stall fault): while the store is stalled, every
// write and sync of its files blocks, as they do on a disk that stops
// answering (a failing device, a saturated network volume); reads of what
// is cached or already on disk go on. Resuming releases them all, in no
// particular order, and the store carries on as if the disk had been slow.
//
// A store that is never stalled pays one atomic load per write.

// stallGate blocks writes while it holds a channel; closing the channel
// releases them.
type stallGate struct {
	held atomic.Pointer[chan struct{}]
}

// wait blocks while the gate is held.
func (g *stallGate) wait() {
	if ch := g.held.Load(); ch != nil {
		<-*ch
	}
}

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
