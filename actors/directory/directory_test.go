package directory

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// shard drives one shard over a MemLog; in manual mode entries wait for
// commit, as in a store whose writes are not yet durable.
type shard struct {
	t       *testing.T
	log     *persistence.MemLog
	s       *State
	manual  bool
	pending []*Effects
}

func newShard(t *testing.T, id string) *shard {
	t.Helper()
	log := persistence.NewMemLog()
	sh := &shard{t: t, log: log}
	sh.load(id)
	return sh
}

func (sh *shard) load(id string) {
	sh.s = Load(id, sh.log)
}

func (sh *shard) apply(eff *Effects) {
	sh.log.Append(eff.Entry, func(err error) {
		if err != nil {
			sh.t.Fatal(err)
		}
	})
	sh.s.Committed(eff.Index)
}

func (sh *shard) commit() {
	for _, eff := range sh.pending {
		sh.apply(eff)
	}
	sh.pending = nil
}

func (sh *shard) do(op string, args any) *Effects {
	sh.t.Helper()
	b, _ := json.Marshal(args)
	eff := sh.s.Handle(op, b, time.Time{})
	if eff.Err != nil && eff.Entry != nil {
		sh.t.Fatalf("%s refused with %v but wrote", op, eff.Err)
	}
	if eff.Entry != nil {
		if sh.manual {
			sh.pending = append(sh.pending, eff)
		} else {
			sh.apply(eff)
		}
	}
	return eff
}

func (sh *shard) put(e Entry) *Effects {
	sh.t.Helper()
	eff := sh.do(OpPut, e)
	if eff.Err != nil {
		sh.t.Fatalf("put %+v: %v", e, eff.Err)
	}
	return eff
}

func (sh *shard) query(q QueryArgs) QueryResult {
	sh.t.Helper()
	eff := sh.do(OpQuery, q)
	if eff.Err != nil {
		sh.t.Fatalf("query %+v: %v", q, eff.Err)
	}
	var r QueryResult
	_ = json.Unmarshal(eff.Result, &r)
	return r
}

// all pages through the shard and returns the ids in order.
func (sh *shard) all(q QueryArgs) []string {
	sh.t.Helper()
	var ids []string
	for range 1000 {
		r := sh.query(q)
		for _, h := range r.Entries {
			ids = append(ids, h.ID)
		}
		if r.Done {
			return ids
		}
		q.After = r.Last
	}
	sh.t.Fatal("no end of pages")
	return nil
}

func entry(id string, created int64, version uint64, tags ...string) Entry {
	return Entry{ID: id, Type: protocol.TypeCommunity, Tags: tags, Listed: true, CreatedMS: created, Version: version}
}

func TestShardOrderAndVersions(t *testing.T) {
	sh := newShard(t, TypeShard(protocol.TypeCommunity))
	sh.put(entry("a", 100, 1))
	sh.put(entry("b", 300, 1))
	sh.put(entry("c", 200, 1))
	sh.put(entry("d", 300, 1))
	// Newest first, then by id.
	if got := sh.all(QueryArgs{Limit: 2}); !slices.Equal(got, []string{"b", "d", "c", "a"}) {
		t.Fatalf("order %v", got)
	}
	// An older or equal version changes nothing.
	gone := entry("b", 300, 2)
	gone.Listed = false
	sh.put(gone)
	if eff := sh.put(entry("b", 300, 1)); eff.Entry != nil {
		t.Errorf("an older version wrote")
	}
	if eff := sh.put(gone); eff.Entry != nil {
		t.Errorf("a repeated version wrote")
	}
	if got := sh.all(QueryArgs{Limit: 10}); !slices.Equal(got, []string{"d", "c", "a"}) {
		t.Errorf("after removal %v", got)
	}
	// Another type does not belong in this shard.
	other := entry("e", 500, 1)
	other.Type = protocol.TypeStandard
	sh.put(other)
	if got := sh.all(QueryArgs{Limit: 10}); slices.Contains(got, "e") {
		t.Errorf("a standard channel listed in the community shard: %v", got)
	}
	// It survives a restart.
	sh.load(TypeShard(protocol.TypeCommunity))
	if got := sh.all(QueryArgs{Limit: 10}); !slices.Equal(got, []string{"d", "c", "a"}) {
		t.Errorf("after restart %v", got)
	}
	// A newer listing brings b back.
	sh.put(entry("b", 300, 3))
	if got := sh.all(QueryArgs{Limit: 10}); !slices.Equal(got, []string{"b", "d", "c", "a"}) {
		t.Errorf("relisted %v", got)
	}
}

func TestShardTagsAndFilters(t *testing.T) {
	sh := newShard(t, TagShard("music"))
	for i := range 1200 {
		tags := []string{"music"}
		if i%100 == 0 {
			tags = append(tags, "jazz")
		}
		sh.put(entry(fmt.Sprintf("ch%04d", i), int64(i), 1, tags...))
	}
	// A filtered query reads at most maxExamined entries per call, so it
	// may answer short pages that are not done: paging on finds all.
	want := []string{"ch1100", "ch1000", "ch0900", "ch0800", "ch0700", "ch0600", "ch0500", "ch0400", "ch0300", "ch0200", "ch0100", "ch0000"}
	if got := sh.all(QueryArgs{Limit: 5, Tags: []string{"jazz"}}); !slices.Equal(got, want) {
		t.Errorf("jazz: %v", got)
	}
	r := sh.query(QueryArgs{Limit: 50, Tags: []string{"jazz"}})
	if len(r.Entries) != 5 || r.Done {
		t.Errorf("first filtered call: %d entries done=%v, want the 5 among the newest 512 and more to read", len(r.Entries), r.Done)
	}
	if got := sh.all(QueryArgs{Limit: 10, Type: protocol.TypeStandard}); len(got) != 0 {
		t.Errorf("type filter: %v", got)
	}
	// Dropping the tag removes the entry from this shard.
	sh.put(entry("ch1100", 1100, 2, "rock"))
	if got := sh.all(QueryArgs{Limit: 5, Tags: []string{"jazz"}}); slices.Contains(got, "ch1100") {
		t.Errorf("still listed after its tag was dropped")
	}
	if got := len(sh.all(QueryArgs{Limit: 100})); got != 1199 {
		t.Errorf("%d entries, want 1199", got)
	}
}

func TestShardPendingWrites(t *testing.T) {
	sh := newShard(t, TypeShard(protocol.TypeCommunity))
	for i := range 10 {
		sh.put(entry(fmt.Sprint("s", i), int64(i), 1))
	}
	sh.manual = true
	sh.put(entry("p1", 100, 1))
	gone := entry("s5", 5, 2)
	gone.Listed = false
	sh.put(gone)
	sh.put(entry("s5", 5, 1)) // older: must see the pending version
	want := []string{"p1", "s9", "s8", "s7", "s6", "s4", "s3", "s2", "s1", "s0"}
	check := func(when string) {
		t.Helper()
		for _, limit := range []int{1, 3, 100} {
			if got := sh.all(QueryArgs{Limit: limit}); !slices.Equal(got, want) {
				t.Errorf("%s limit %d: %v", when, limit, got)
			}
		}
	}
	check("pending")
	if !sh.s.Pending() {
		t.Error("not pending")
	}
	sh.commit()
	check("committed")
	if sh.s.Pending() {
		t.Error("still pending")
	}
}

func TestShardRefusals(t *testing.T) {
	sh := newShard(t, TypeShard(protocol.TypeCommunity))
	for _, q := range []QueryArgs{{Limit: 0}, {Limit: 1001}, {Limit: 5, After: "zz"}} {
		if eff := sh.do(OpQuery, q); eff.Err == nil || eff.Err.Code != protocol.CodeBadRequest {
			t.Errorf("query %+v: %v", q, eff.Err)
		}
	}
	if eff := sh.do(OpPut, Entry{}); eff.Err == nil {
		t.Error("an entry without id accepted")
	}
	if eff := sh.do("nope", nil); eff.Err == nil {
		t.Error("unknown op accepted")
	}
}

func TestShardIDs(t *testing.T) {
	long := string(make([]byte, 300))
	if id := TagShard(long); len(id) > maxShardID || !IsShard(id) {
		t.Errorf("long tag shard %q", id)
	}
	if TagShard("a") == TypeShard("a") || !IsShard(TypeShard("live")) || IsShard("general") {
		t.Error("shard ids")
	}
}
