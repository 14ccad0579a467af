package shard

// When the engine answers: acknowledgements, confirmed reads and
// activation barriers, against the rounds' fsyncs.

import (
	"testing"
)

// TestAcknowledgedBeforeTheNextFsync: a committed proposal is answered in
// the round that learns of its commit, before that round writes and
// fsyncs the entries proposed since: an acknowledgement costs the fsyncs
// that make it durable on a majority, not one more. With a single voter
// its entry commits when its own write is done; with three, when the
// followers' acknowledgements arrive.
func TestAcknowledgedBeforeTheNextFsync(t *testing.T) {
	check := func(t *testing.T, h *harness, leader *testNode, rounds int) {
		t.Helper()
		g := leader.e.groups[0]
		fsyncs := &leader.e.status.fsyncs
		var at uint64
		first := &result{}
		leader.e.Propose(NewStream(0, g.term, ""), []byte("k=1"), func(err error) {
			at = fsyncs.Load()
			first.set(err)
		})
		for range rounds {
			h.step()
		}
		if first.done {
			t.Fatal("answered before its commit was known")
		}
		before := fsyncs.Load()
		second := h.propose(leader, 0, "k=2")
		h.step() // learns of the first's commit; writes the second
		h.mustDone("first proposal", first)
		if fsyncs.Load() != before+1 {
			t.Fatalf("the round fsynced %d times, want once (the second proposal)", fsyncs.Load()-before)
		}
		if at != before {
			t.Fatalf("the first proposal was answered after %d more fsyncs of the leader", at-before)
		}
		h.settle()
		h.mustDone("second proposal", second)
		if h.get(leader, 0, "k") != "2" {
			t.Fatal("the second proposal did not apply")
		}
	}
	t.Run("single voter", func(t *testing.T) {
		h, a := singleNode(t, 1)
		check(t, h, a, 1) // its write: committed at Advance
	})
	t.Run("three voters", func(t *testing.T) {
		h := threeNodes(t, nil)
		check(t, h, h.node("a"), 2) // the leader's write and sends; the followers' writes and answers
	})
}

// TestReadsAndActivationsBeforeTheRoundsFsync: a confirmed read, and an
// activation whose entries are applied, are answered before the round
// writes and fsyncs the entries proposed meanwhile: neither needs them.
func TestReadsAndActivationsBeforeTheRoundsFsync(t *testing.T) {
	h, a := singleNode(t, 1)
	g := a.e.groups[0]
	fsyncs := &a.e.status.fsyncs
	var at uint64
	answered := func(r *result) func(error) {
		return func(err error) { at = fsyncs.Load(); r.set(err) }
	}

	// A read, with a proposal in the same round.
	before := fsyncs.Load()
	read := &result{}
	written := h.propose(a, 0, "k=1")
	a.e.ReadIndex(NewStream(0, g.term, ""), answered(read))
	h.step()
	h.mustDone("read", read)
	if fsyncs.Load() != before+1 {
		t.Fatalf("the round fsynced %d times, want once (the proposal)", fsyncs.Load()-before)
	}
	if at != before {
		t.Fatal("the read was answered after the round's fsync")
	}
	h.settle()
	h.mustDone("proposal", written)

	// An activation waits for the entries before it: written in one
	// round, applied in the next, which writes a later proposal.
	h.propose(a, 0, "k=2")
	lead := &result{}
	a.e.Lead(0, "", func(s *Stream, err error) { at = fsyncs.Load(); lead.setStream(s, err) })
	h.step() // writes k=2
	if lead.done {
		t.Fatal("the activation was answered before the entry it waits for applied")
	}
	before = fsyncs.Load()
	later := h.propose(a, 0, "k=3")
	h.step() // applies k=2, then writes k=3
	h.mustDone("activation", lead)
	if at != before || fsyncs.Load() != before+1 {
		t.Fatalf("the activation was answered after %d of the round's %d fsyncs", at-before, fsyncs.Load()-before)
	}
	if h.get(a, 0, "k") != "2" && h.get(a, 0, "k") != "3" {
		t.Fatal("k=2 did not apply")
	}
	h.settle()
	h.mustDone("later proposal", later)
}

// TestActivationWaitsForItsScopeOnly: an activation barrier with a scope
// waits for the entries of that scope proposed before it, not for other
// scopes' — in a connect storm, a new user's actor no longer waits for
// the other new users' profiles — and is answered before the round's
// fsync when its scope has nothing pending; one proposed in the same
// round as the barrier is waited for; a barrier without a scope waits
// for every entry.
func TestActivationWaitsForItsScopeOnly(t *testing.T) {
	h := newHarness(t, "a", "b", "c")
	a := h.node("a")
	if err := a.e.Bootstrap(1); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.grow("a", 0, "b", "c")
	g := a.e.groups[0]
	fsyncs := &a.e.status.fsyncs
	scoped := func(scope, kv string) *result {
		r := &result{}
		a.e.Propose(NewStream(0, g.term, scope), []byte(kv), r.set)
		return r
	}
	lead := func(scope string) (*result, *uint64) {
		r, at := &result{}, new(uint64)
		a.e.Lead(0, scope, func(s *Stream, err error) { *at = fsyncs.Load(); r.setStream(s, err) })
		return r, at
	}

	// With its followers cut off, the leader writes u1's entry and
	// cannot commit it.
	h.net.Cut("a", "b")
	h.net.Cut("a", "c")
	w1 := scoped("u1", "k1=1")
	h.step()
	before := fsyncs.Load()
	other, otherAt := lead("u2")
	same, _ := lead("u1")
	all, _ := lead("")
	w3 := scoped("u3", "k3=1") // the next round writes and fsyncs it
	h.step()
	if fsyncs.Load() != before+1 {
		t.Fatalf("the round fsynced %d times, want once", fsyncs.Load()-before)
	}
	h.mustDone("the activation of a scope with nothing pending", other)
	if *otherAt != before || other.term != g.term {
		t.Fatalf("the activation of a scope with nothing pending: answered after %d of the round's fsyncs, term %d", *otherAt-before, other.term)
	}
	h.step()
	if same.done || all.done {
		t.Fatalf("activations answered before the entries they wait for committed: of u1 %v, without a scope %v", same.done, all.done)
	}
	h.net.HealAll()
	h.tick(3) // heartbeats find the followers behind
	h.settle()
	h.mustDone("the activation of u1", same)
	h.mustDone("the activation without a scope", all)
	h.mustDone("u1's entry", w1)
	h.mustDone("u3's entry", w3)
	if h.get(a, 0, "k1") != "1" {
		t.Fatal("k1=1 did not apply")
	}

	// An entry of the scope proposed in the barrier's own round.
	w := scoped("u1", "k1=2")
	again, _ := lead("u1")
	h.step() // writes k1=2
	if again.done {
		t.Fatal("the activation was answered before its scope's entry of the same round applied")
	}
	var k1 string
	for i := 0; i < 20 && !again.done; i++ {
		h.step()
		k1 = h.get(a, 0, "k1")
	}
	h.mustDone("the activation after its scope's entry", again)
	if k1 != "2" {
		t.Fatal("the activation was answered before its scope's entry of the same round applied")
	}
	h.settle()
	h.mustDone("u1's second entry", w)
	if len(g.scopeLast) != 0 || len(g.scopeOrder) != 0 {
		t.Fatalf("applied entries still tracked: %v %v", g.scopeLast, g.scopeOrder)
	}
}
