package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// fillScope fences sc at epoch and writes records into several tables.
func fillScope(t *testing.T, s *Store, sc Scope, epoch uint64, tag string) {
	t.Helper()
	l := s.Log(sc)
	mustFence(t, l, epoch)
	e := &Entry{Epoch: epoch}
	e.Put(TableMeta, nil, []byte(tag+"-meta"))
	for n := uint64(1); n <= 5; n++ {
		e.Put(TableMessage, U64(n), []byte(fmt.Sprintf("%s-msg-%d", tag, n)))
		e.Put(TableEvent, U64(n), []byte(fmt.Sprintf("%s-ev-%d", tag, n)))
	}
	e.Put(TableMember, []byte("alice"), []byte(tag+"-alice"))
	e.Put(TableIdem, []byte("alice\x00c1"), U64(1))
	mustAppend(t, l, e)
}

func snapshotOf(t *testing.T, l Log) *Snapshot {
	t.Helper()
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return snap
}

func sameRecords(a, b []SnapshotRecord) bool {
	return slices.EqualFunc(a, b, func(x, y SnapshotRecord) bool {
		return x.Table == y.Table && bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Value, y.Value)
	})
}

func TestSnapshotContents(t *testing.T) {
	s := memStore(t)
	sc := Scope{Kind: KindChannel, ID: "room"}
	fillScope(t, s, sc, 3, "src")
	fillScope(t, s, Scope{Kind: KindChannel, ID: "room2"}, 1, "other")
	snap := snapshotOf(t, s.Log(sc))
	if snap.Scope != sc || snap.Epoch != 3 {
		t.Fatalf("snapshot of %v at epoch %d", snap.Scope, snap.Epoch)
	}
	if len(snap.Records) != 1+5+5+1+1 {
		t.Fatalf("%d records", len(snap.Records))
	}
	for i, r := range snap.Records {
		if r.Table == TableFence {
			t.Fatal("snapshot carries the fence as a record")
		}
		if !bytes.HasPrefix(r.Value, []byte("src")) && r.Table != TableIdem {
			t.Fatalf("record %d of another scope: %q", i, r.Value)
		}
		if i > 0 {
			p := snap.Records[i-1]
			if p.Table > r.Table || p.Table == r.Table && bytes.Compare(p.Key, r.Key) >= 0 {
				t.Fatalf("records out of order at %d", i)
			}
		}
	}
	// A snapshot is a copy: later writes do not change it.
	mustAppend(t, s.Log(sc), put(3, TableMeta, "", "changed"))
	if string(snap.Records[0].Value) != "src-meta" {
		t.Fatalf("snapshot changed under a later write: %q", snap.Records[0].Value)
	}
	// A scope never written has an empty snapshot.
	empty := snapshotOf(t, s.Channel("nobody"))
	if empty.Epoch != 0 || len(empty.Records) != 0 {
		t.Fatalf("empty scope snapshot: %+v", empty)
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src, dst := memStore(t), memStore(t)
	sc := Scope{Kind: KindChannel, ID: "room"}
	fillScope(t, src, sc, 3, "src")
	// The target holds an older copy of the scope with a record the source
	// deleted since, and neighbours that must survive the restore.
	fillScope(t, dst, sc, 1, "dst")
	mustAppend(t, dst.Log(sc), put(1, TableAux, "stale", "x"))
	neighbours := []Scope{{KindChannel, "roo"}, {KindChannel, "room1"}, {KindUser, "room"}}
	for _, n := range neighbours {
		fillScope(t, dst, n, 2, "keep")
	}

	snap := snapshotOf(t, src.Log(sc))
	if err := dst.Restore(snap, 4); err != nil {
		t.Fatalf("restore: %v", err)
	}
	l := dst.Log(sc)
	got := snapshotOf(t, l)
	if got.Epoch != 4 || !sameRecords(got.Records, snap.Records) {
		t.Fatalf("restored scope differs: epoch %d, %d records", got.Epoch, len(got.Records))
	}
	if _, err := l.Get(TableAux, []byte("stale")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restore kept a record the snapshot does not have (%v)", err)
	}
	wantErr(t, "append of the snapshot's epoch", appendWait(t, l, put(3, TableAux, "k", "v")), ErrFenced)
	mustAppend(t, l, put(4, TableAux, "k", "v"))
	for _, n := range neighbours {
		ns := snapshotOf(t, dst.Log(n))
		if ns.Epoch != 2 || len(ns.Records) != 13 || string(ns.Records[0].Value) != "keep-meta" {
			t.Fatalf("restore of %v disturbed %v: epoch %d, %d records", sc, n, ns.Epoch, len(ns.Records))
		}
	}
}

func TestRestoreRefusesStaleEpochs(t *testing.T) {
	src, dst := memStore(t), memStore(t)
	sc := Scope{Kind: KindChannel, ID: "room"}
	fillScope(t, src, sc, 3, "src")
	fillScope(t, dst, sc, 5, "dst")
	before := snapshotOf(t, dst.Log(sc))
	snap := snapshotOf(t, src.Log(sc))
	for _, epoch := range []uint64{0, 4, 5} {
		wantErr(t, fmt.Sprintf("restore at epoch %d", epoch), dst.Restore(snap, epoch), ErrFenced)
	}
	after := snapshotOf(t, dst.Log(sc))
	if after.Epoch != 5 || !sameRecords(after.Records, before.Records) {
		t.Fatal("a refused restore changed the scope")
	}
	if err := dst.Restore(snap, 6); err != nil {
		t.Fatalf("restore above the fence: %v", err)
	}
	wantErr(t, "nil snapshot", dst.Restore(nil, 7), ErrInvalid)
}

func TestRestoreIntoEmptyStoreSurvivesReopen(t *testing.T) {
	src := memStore(t)
	sc := Scope{Kind: KindUser, ID: "alice"}
	fillScope(t, src, sc, 2, "src")
	snap := snapshotOf(t, src.Log(sc))

	fs := vfs.NewMem()
	dst, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(snap, 3); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	got := snapshotOf(t, openStore(t, fs, Options{}).Log(sc))
	if got.Epoch != 3 || !sameRecords(got.Records, snap.Records) {
		t.Fatalf("restored scope after reopen: epoch %d, %d records", got.Epoch, len(got.Records))
	}
}

// TestRestoreIgnoresFenceRecords checks that a snapshot cannot smuggle in
// a fence of its own: the restore's epoch wins.
func TestRestoreIgnoresFenceRecords(t *testing.T) {
	s := memStore(t)
	sc := Scope{Kind: KindChannel, ID: "smuggle"}
	snap := &Snapshot{Scope: sc, Epoch: 99, Records: []SnapshotRecord{
		{Table: TableFence, Value: U64(1 << 60)},
		{Table: TableAux, Key: []byte("k"), Value: []byte("v")},
	}}
	if err := s.Restore(snap, 2); err != nil {
		t.Fatal(err)
	}
	if ep, _ := s.Log(sc).Epoch(); ep != 2 {
		t.Fatalf("epoch %d, want 2", ep)
	}
	if got := mustGet(t, s.Log(sc), TableAux, "k"); got != "v" {
		t.Fatalf("k = %q", got)
	}
}

func TestScopes(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	channels := map[string]uint64{"": 1, "a": 2, "ab": 3, "a\x00": 4, "b": 5, "zz": 1 << 33}
	users := map[string]uint64{"a": 7, "bob": 8}
	for id, ep := range channels {
		mustFence(t, s.Channel(id), ep)
		mustAppend(t, s.Channel(id), put(ep, TableMessage, string(U64(1)), "m"))
	}
	for id, ep := range users {
		mustFence(t, s.User(id), ep)
	}
	// A restored scope is listed; a scope never fenced is not.
	if err := s.Restore(&Snapshot{Scope: Scope{Kind: KindChannel, ID: "restored"}}, 9); err != nil {
		t.Fatal(err)
	}
	channels["restored"] = 9
	wantErr(t, "unfenced", appendWait(t, s.Channel("never"), put(1, TableAux, "k", "v")), ErrFenced)

	check := func(s *Store) {
		t.Helper()
		for kind, want := range map[Kind]map[string]uint64{KindChannel: channels, KindUser: users, KindNode: {}} {
			got := map[string]uint64{}
			err := s.Scopes(kind, func(id string, epoch uint64) bool {
				if _, dup := got[id]; dup {
					t.Fatalf("kind %c: %q listed twice", kind, id)
				}
				got[id] = epoch
				return true
			})
			if err != nil {
				t.Fatalf("scopes %c: %v", kind, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("scopes %c: got %v, want %v", kind, got, want)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, fs, Options{})
	check(s)

	// Returning false stops the walk.
	calls := 0
	if err := s.Scopes(KindChannel, func(string, uint64) bool { calls++; return calls < 2 }); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("walk went on after false: %d calls", calls)
	}
}
