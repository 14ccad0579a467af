package cluster

import "testing"

// TestShardTableMerge: the highest term's leader wins; a leader's own
// report of no leader in its term (it stepped down) clears it, and only
// its own.
func TestShardTableMerge(t *testing.T) {
	tab := &shardTable{shards: map[uint32]ShardInfo{}}
	leader := func() string { si, _ := tab.get(7); return si.Leader }
	steps := []struct {
		in      ShardInfo
		changed bool
		leader  string
	}{
		{ShardInfo{Shard: 7, Term: 5, Leader: "a", From: "a"}, true, "a"},
		{ShardInfo{Shard: 7, Term: 4, Leader: "b", From: "b"}, false, "a"}, // an older term
		{ShardInfo{Shard: 7, Term: 5, Leader: "", From: "b"}, false, "a"},  // a follower that has not heard yet
		{ShardInfo{Shard: 7, Term: 5, Leader: "", From: "a"}, true, ""},    // a stepped down
		{ShardInfo{Shard: 7, Term: 5, Leader: "", From: "a"}, false, ""},
		{ShardInfo{Shard: 7, Term: 6, Leader: "c", From: "c"}, true, "c"},
	}
	for i, s := range steps {
		if got := tab.merge(s.in); got != s.changed || leader() != s.leader {
			t.Fatalf("step %d (%+v): changed %v, leader %q; want %v, %q", i, s.in, got, leader(), s.changed, s.leader)
		}
	}
}
