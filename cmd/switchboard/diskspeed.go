package main

import (
	"sync"
	"time"
)

// A slow disk. A shard's entries commit once a majority has them, but a
// leader steps its followers' acknowledgements only between its own
// rounds, each of which waits for its own write's fsync: a leader whose
// fsyncs take 300 ms makes every commit of its shards wait about that
// long, however fast its followers are. So a host judges its disk from
// the raft engine's synced writes, and while it is slow the node gossips
// so (disk_slow) and hands its shard leaderships to caught-up voters on
// other hosts, as it does while its disk is full.
//
// The judgement is made over windows of diskSpeed.window (5 s): a window
// with at least minJudgedWrites writes is slow when most of them took over
// slowWrite, fast when most took under fastWrite. The disk becomes slow
// after slowWindows slow windows in a row (10 s), and fast again after
// fastWindows fast ones in a row (30 s), so that leaderships do not swing
// back and forth; windows without enough writes change nothing.
const (
	slowWrite       = 100 * time.Millisecond
	fastWrite       = 25 * time.Millisecond
	minJudgedWrites = 3
	slowWindows     = 2
	fastWindows     = 6
)

// diskSpeed judges the disk from its synced writes. Safe for concurrent
// use.
type diskSpeed struct {
	window time.Duration

	mu               sync.Mutex // guards the fields below
	start            time.Time  // of the current window
	n, over, under   int        // the current window's writes: all, slow, fast
	slowRun, fastRun int        // slow and fast windows in a row
	slow             bool
}

func newDiskSpeed(window time.Duration) *diskSpeed {
	if window <= 0 {
		window = 5 * time.Second
	}
	return &diskSpeed{window: window}
}

// add notes a synced write that took d, made at now, and reports whether
// the verdict changed (then Slow says which it is).
func (s *diskSpeed) add(d time.Duration, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.slow
	if s.start.IsZero() {
		s.start = now
	}
	if now.Sub(s.start) >= s.window {
		s.judge()
		s.start, s.n, s.over, s.under = now, 0, 0, 0
	}
	s.n++
	switch {
	case d > slowWrite:
		s.over++
	case d < fastWrite:
		s.under++
	}
	return s.slow != was
}

// judge closes the current window.
func (s *diskSpeed) judge() {
	switch {
	case s.n < minJudgedWrites:
		return
	case 2*s.over > s.n:
		s.slowRun, s.fastRun = s.slowRun+1, 0
	case 2*s.under > s.n:
		s.slowRun, s.fastRun = 0, s.fastRun+1
	default:
		s.slowRun, s.fastRun = 0, 0
	}
	switch {
	case !s.slow && s.slowRun >= slowWindows:
		s.slow = true
	case s.slow && s.fastRun >= fastWindows:
		s.slow = false
	}
}

// Slow reports the verdict.
func (s *diskSpeed) Slow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slow
}
