package gateway

import (
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/actors/directory"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// shardReply builds a shard's answer: hits by id at the given keys.
func shardReply(t *testing.T, done bool, last string, hits ...string) *clusterpb.Reply {
	t.Helper()
	r := directory.QueryResult{Entries: []directory.Hit{}, Done: done}
	for i := 0; i+1 < len(hits); i += 2 {
		r.Entries = append(r.Entries, directory.Hit{ID: hits[i], Key: hex.EncodeToString([]byte(hits[i+1]))})
	}
	if last != "" {
		r.Last = hex.EncodeToString([]byte(last))
	}
	b, _ := json.Marshal(r)
	return &clusterpb.Reply{Result: b}
}

func ids(hits []shardHit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.ID)
	}
	return out
}

func TestMergeShards(t *testing.T) {
	shards := []string{"s1", "s2"}
	hex := func(s string) string { return hex.EncodeToString([]byte(s)) }
	tests := []struct {
		name   string
		reps   []*clusterpb.Reply
		limit  int
		want   []string
		cursor string
	}{
		{"both done, fits", []*clusterpb.Reply{
			shardReply(t, true, "c", "a", "a", "c", "c"),
			shardReply(t, true, "d", "b", "b", "d", "d"),
		}, 10, []string{"a", "b", "c", "d"}, ""},
		{"full page", []*clusterpb.Reply{
			shardReply(t, false, "c", "a", "a", "c", "c"),
			shardReply(t, true, "d", "b", "b", "d", "d"),
		}, 2, []string{"a", "b"}, hex("b")},
		// s1 read only up to "b": entries of s2 past it wait, or s1's
		// unread ones would be skipped.
		{"bounded by a short shard", []*clusterpb.Reply{
			shardReply(t, false, "b", "a", "a"),
			shardReply(t, true, "z", "c", "c", "z", "z"),
		}, 10, []string{"a"}, hex("b")},
		{"nothing matched yet", []*clusterpb.Reply{
			shardReply(t, false, "m"),
			shardReply(t, true, ""),
		}, 10, nil, hex("m")},
		{"duplicates", []*clusterpb.Reply{
			shardReply(t, true, "a", "x", "a"),
			shardReply(t, true, "a", "x", "a"),
		}, 10, []string{"x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits, cursor, perr := mergeShards(shards, tt.reps, tt.limit)
			if perr != nil {
				t.Fatal(perr)
			}
			if !slices.Equal(ids(hits), tt.want) || cursor != tt.cursor {
				t.Errorf("got %v cursor %q, want %v cursor %q", ids(hits), cursor, tt.want, tt.cursor)
			}
		})
	}
	bad := &clusterpb.Reply{Error: &clusterpb.Error{Code: string(protocol.CodeUnavailable), Message: "down"}}
	if _, _, perr := mergeShards(shards, []*clusterpb.Reply{bad, shardReply(t, true, "")}, 5); perr == nil || perr.Code != protocol.CodeUnavailable {
		t.Errorf("a failed shard: %v", perr)
	}
}

func TestGrants(t *testing.T) {
	var g grants
	mark := g.mark()
	g.setIf("c1", []string{"write"}, mark)
	if got := g.get("c1"); !slices.Equal(got, []string{"write"}) {
		t.Fatalf("grant %v", got)
	}
	// A drop in between: a late token-join reply records nothing.
	mark = g.mark()
	g.drop("c1")
	g.setIf("c1", []string{"moderate"}, mark)
	if got := g.get("c1"); got != nil {
		t.Errorf("grant %v after a drop, want none", got)
	}
	if got := g.get("other"); got != nil {
		t.Errorf("grant %v for a channel never granted", got)
	}
}
