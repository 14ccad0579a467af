package persistence

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestStallWritesHoldsDurableWrites: while the store is stalled a durable
// write does not return, reads go on, and resuming lets the write finish.
func TestStallWritesHoldsDurableWrites(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutNode("before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if !s.StallWrites() || s.StallWrites() || !s.WritesStalled() {
		t.Fatal("StallWrites: want true once, then false, and stalled")
	}
	done := make(chan error, 1)
	go func() { done <- s.PutNode("during", []byte("2")) }()
	// A negative check: the write must still wait a moment later.
	select {
	case err := <-done:
		t.Fatalf("a write returned (%v) while the store was stalled", err)
	case <-time.After(200 * time.Millisecond):
	}
	if v, err := s.GetNode("before"); err != nil || string(v) != "1" {
		t.Fatalf("read during the stall: %q, %v", v, err)
	}
	if !s.ResumeWrites() || s.ResumeWrites() || s.WritesStalled() {
		t.Fatal("ResumeWrites: want true once, then false, and not stalled")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write did not finish after the stall ended")
	}
	if v, err := s.GetNode("during"); err != nil || string(v) != "2" {
		t.Fatalf("after the stall: %q, %v", v, err)
	}
}
