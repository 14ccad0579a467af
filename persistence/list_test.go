package persistence

import (
	"slices"
	"testing"
)

// ListScopes pages through the scopes of a kind held in the given shards
// in key order — ids by length, then byte by byte — merging the shards'
// lists; other shards' scopes and another kind's are left out.
func TestListScopes(t *testing.T) {
	s := memStore(t)
	ids := map[string]uint32{"b": 1, "a": 2, "zz": 1, "aaa": 2, "ab": 1, "c\xff": 2, "c": 1, "x": 2, "elsewhere": 3}
	for id, sh := range ids {
		mustAppend(t, s.ShardLog(sh, Scope{Kind: KindChannel, ID: id}, applyNow(s, sh)), put(TableMessage, "k", "v"))
	}
	mustAppend(t, s.ShardLog(1, Scope{Kind: KindUser, ID: "u1"}, applyNow(s, 1)), put(TableMeta, "k", "v"))
	var got []string
	for after := ""; ; {
		page, err := s.ListScopes([]uint32{1, 2}, KindChannel, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1]
	}
	want := []string{"a", "b", "c", "x", "ab", "c\xff", "zz", "aaa"}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %q, want %q", got, want)
	}
	if users, _ := s.ListScopes([]uint32{1, 2}, KindUser, "", 0); !slices.Equal(users, []string{"u1"}) {
		t.Errorf("users %q", users)
	}
}
