package main

import (
	"testing"
	"time"
)

// TestDiskSpeed: the disk turns slow after two windows in a row whose
// writes were mostly slow, not after one; it turns fast again only after
// six fast windows in a row; windows with too few writes, or neither
// mostly slow nor mostly fast, change nothing on their own.
func TestDiskSpeed(t *testing.T) {
	s := newDiskSpeed(time.Second)
	now := time.Unix(1_000_000, 0)
	// window writes n writes of d within one window, then moves past it.
	window := func(n int, d time.Duration) (changed bool) {
		for i := range n {
			changed = s.add(d, now.Add(time.Duration(i)*time.Millisecond)) || changed
		}
		now = now.Add(time.Second)
		return changed
	}
	// A window is judged when the first write after it comes.
	window(10, 300*time.Millisecond)
	if window(1, 300*time.Millisecond) || s.Slow() {
		t.Fatal("slow after one slow window")
	}
	window(2, time.Millisecond) // too few to judge: the run goes on
	window(9, 300*time.Millisecond)
	if !window(1, time.Millisecond) || !s.Slow() {
		t.Fatal("not slow after two slow windows in a row")
	}
	for i := range 5 {
		window(20, time.Millisecond)
		if i > 0 && !s.Slow() {
			t.Fatalf("fast again after %d fast windows", i)
		}
	}
	window(10, 50*time.Millisecond) // neither: the fast run starts over
	for range 6 {
		window(20, time.Millisecond)
	}
	if !s.Slow() {
		t.Fatal("fast again though a middling window broke the run")
	}
	if !window(1, time.Millisecond) || s.Slow() {
		t.Fatal("still slow after six fast windows in a row")
	}
}
