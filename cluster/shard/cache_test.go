package shard

import (
	"fmt"
	"testing"
)

// TestCachesHoldOnlyWhatMayBeReadAgain: a replica's entry cache forgets
// what it applied; a leader's keeps what a follower still lacks and
// forgets it once the follower has it.
func TestCachesHoldOnlyWhatMayBeReadAgain(t *testing.T) {
	t.Parallel()
	t.Run("alone", func(t *testing.T) {
		t.Parallel()
		h, a := singleNode(t, 2)
		for i := range 20 {
			r := h.propose(a, uint32(i%2), fmt.Sprintf("k%d=v", i))
			h.settle()
			h.mustDone("propose", r)
		}
		for s, g := range a.e.groups {
			if n := g.st.Cached(); n != 0 {
				t.Fatalf("shard %d caches %d applied entries", s, n)
			}
		}
	})
	t.Run("with followers", func(t *testing.T) {
		t.Parallel()
		h := threeNodes(t, nil)
		a, c := h.node("a"), h.node("c")
		h.tick(3)
		h.net.Isolate("c")
		const n = 10
		for i := range n {
			r := h.propose(a, 0, fmt.Sprintf("k%d=v", i))
			h.settle()
			h.mustDone("propose", r)
		}
		h.tick(3)
		if got := a.e.groups[0].st.Cached(); got < n {
			t.Fatalf("the leader caches %d entries while a follower lacks %d", got, n)
		}
		if got := h.node("b").e.groups[0].st.Cached(); got != 0 {
			t.Fatalf("an up-to-date follower caches %d applied entries", got)
		}
		h.net.HealAll()
		h.tick(5)
		h.settle()
		h.tick(3)
		if got := h.get(c, 0, fmt.Sprintf("k%d", n-1)); got != "v" {
			t.Fatalf("c did not catch up: %q", got)
		}
		for _, nd := range h.live() {
			if got := nd.e.groups[0].st.Cached(); got != 0 {
				t.Fatalf("%s caches %d entries every replica holds", nd.name, got)
			}
		}
		h.sameState(0)
	})
}
