package shard

import (
	"errors"
	"testing"
)

// TestNewerActivationEndsTheEarlierStream: two activations of one scope
// on one node (the earlier one still draining its mailbox after its
// stop) never both write. What the earlier one proposed before the newer
// one's Lead is applied before that Lead answers; what it proposes or
// reads after is refused, and never applies.
func TestNewerActivationEndsTheEarlierStream(t *testing.T) {
	h, a := singleNode(t, 1)
	g := a.e.groups[0]
	lead := func(scope string) *Stream {
		t.Helper()
		var s *Stream
		var err error
		a.e.Lead(0, scope, func(st *Stream, e error) { s, err = st, e })
		h.settle()
		if err != nil || s == nil {
			t.Fatalf("lead %s: %v", scope, err)
		}
		return s
	}
	propose := func(s *Stream, kv string) *result {
		r := &result{}
		a.e.Propose(s, []byte(kv), r.set)
		return r
	}
	write := func(what string, s *Stream, kv string) {
		t.Helper()
		r := propose(s, kv)
		h.settle()
		h.mustDone(what, r)
	}

	first := lead("u1")
	write("the first activation's entry", first, "k=1")

	second := lead("u1")
	late := propose(first, "k=2")
	read := &result{}
	a.e.ReadIndex(first, read.set)
	h.settle()
	if !errors.Is(late.err, ErrLost) || !errors.Is(read.err, ErrLost) {
		t.Fatalf("the earlier activation after the newer one's Lead: proposal %v, read %v; want ErrLost", late.err, read.err)
	}
	if got := h.get(a, 0, "k"); got != "1" {
		t.Fatalf("k=%q after the earlier activation's late proposal, want 1", got)
	}
	write("the newer activation's entry", second, "k=3")
	if got := h.get(a, 0, "k"); got != "3" {
		t.Fatalf("k=%q, want 3", got)
	}

	// Proposed in the round that handles the newer Lead: appended before
	// the lease moves, so the barrier waits for it.
	old := lead("u2")
	mid := propose(old, "j=1")
	var seen string
	answered := false
	a.e.Lead(0, "u2", func(s *Stream, err error) {
		answered = err == nil
		seen = h.get(a, 0, "j")
	})
	h.settle()
	h.mustDone("the entry proposed with the newer Lead", mid)
	if !answered || seen != "1" {
		t.Fatalf("the newer Lead answered %v having seen j=%q, want after j=1 applied", answered, seen)
	}
	superseded := propose(old, "j=2")
	h.settle()
	if !errors.Is(superseded.err, ErrLost) {
		t.Fatalf("the superseded stream's next proposal: %v, want ErrLost", superseded.err)
	}

	// Closed streams' leases are dropped by the next sweep.
	second.Close()
	closed := propose(second, "k=4")
	h.settle()
	if !errors.Is(closed.err, ErrLost) {
		t.Fatalf("a proposal on a closed stream: %v, want ErrLost", closed.err)
	}
	if len(g.leases) != 2 {
		t.Fatalf("%d leases before the sweep, want 2 (u1's closed one and u2's)", len(g.leases))
	}
	h.now = h.now.Add(leaseSweepEvery)
	h.step()
	if _, ok := g.leases["u1"]; ok || len(g.leases) != 1 {
		t.Fatalf("leases after the sweep: %v, want u2's only", g.leases)
	}
}
