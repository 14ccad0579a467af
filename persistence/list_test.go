package persistence

import (
	"slices"
	"testing"
)

// ListScopes pages through the live scopes of a kind in key order: ids
// by length, then byte by byte; a released scope, one never fenced and
// another kind's are left out.
func TestListScopes(t *testing.T) {
	s := memStore(t)
	ids := []string{"b", "a", "zz", "aaa", "ab", "c\xff", "c", "x", "released", "nofence"}
	for _, id := range ids {
		if id == "nofence" {
			continue
		}
		l := s.Channel(id)
		mustFence(t, l, 1)
		mustAppend(t, l, put(1, TableMessage, "k", "v"))
	}
	mustFence(t, s.User("u1"), 1)
	done := make(chan error, 1)
	s.Release(Scope{Kind: KindChannel, ID: "released"}, "n2", func(_ uint64, err error) { done <- err })
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	var got []string
	for after := ""; ; {
		page, err := s.ListScopes(KindChannel, after, 3)
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
	if !slices.IsSortedFunc(got, func(a, b string) int {
		if ScopeLess(a, b) {
			return -1
		}
		return 1
	}) {
		t.Error("not in ScopeLess order")
	}
	if users, _ := s.ListScopes(KindUser, "", 0); !slices.Equal(users, []string{"u1"}) {
		t.Errorf("users %q", users)
	}
}
