package user

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestLoadReadsEveryRecord: a user with stored state loads all of it
// (profile, channel index, last_seen, file count; file records on demand),
// whichever of its records exist, read from a log in memory and from a
// store on disk (which reads the tables in one pass), and a corrupt
// record fails the load.
func TestLoadReadsEveryRecord(t *testing.T) {
	seen := t0.Add(-time.Hour)
	pres, _ := json.Marshal(presenceRecord{LastSeen: seen})
	joined, _ := t0.MarshalBinary()
	file, _ := json.Marshal(FileRecord{File: protocol.File{ID: "f1", Name: "a.png"}, Owner: "alice"})
	type rec struct {
		t   persistence.Table
		key string
		v   []byte
	}
	all := []rec{
		{persistence.TableMeta, "", protocol.AppendUser(nil, &protocol.User{ID: "alice", Name: "Alice", CreatedAt: protocol.At(t0)})},
		{persistence.TableMember, "general", joined},
		{persistence.TableAux, "presence", pres},
		{persistence.TableAux, "files", []byte("2")},
		{persistence.TableAux, "file\x00f1", file},
		{persistence.TableAux, "file\x00files", file},
	}
	cfg := DefaultConfig()
	store, err := persistence.Open(t.TempDir(), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// logs returns the user's records in both kinds of log; on disk each
	// mask's user lives in a shard of its own.
	sc := persistence.Scope{Kind: persistence.KindUser, ID: "alice"}
	logs := func(e *persistence.Entry, shard uint32) []persistence.Reader {
		mem := persistence.NewMemLog()
		if e.Empty() {
			return []persistence.Reader{mem, store.Reader(shard, sc)}
		}
		mem.Append(e, func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		})
		cmd, err := persistence.EncodeCommand(sc, e)
		if err != nil {
			t.Fatal(err)
		}
		b := store.DB().NewBatch()
		defer b.Close()
		if err := (persistence.StateMachine{}).Apply(b, shard, cmd); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(nil); err != nil {
			t.Fatal(err)
		}
		return []persistence.Reader{mem, store.Reader(shard, sc)}
	}
	for mask := 0; mask < 1<<len(all); mask++ {
		e := &persistence.Entry{}
		for i, r := range all {
			if mask&(1<<i) != 0 {
				e.Put(r.t, []byte(r.key), r.v)
			}
		}
		for _, log := range logs(e, uint32(mask)) {
			checkLoad(t, mask, log, &cfg, seen)
		}
	}
	for i, bad := range []rec{{persistence.TableAux, "presence", []byte("{")}, {persistence.TableAux, "files", []byte("x")}} {
		e := &persistence.Entry{}
		e.Put(bad.t, []byte(bad.key), bad.v)
		for _, log := range logs(e, uint32(1000+i)) {
			if _, err := Load("alice", log, &cfg); err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("corrupt %s in %T: %v", bad.key, log, err)
			}
		}
	}
}

// checkLoad loads alice from log, whose records are those of all (in
// TestLoadReadsEveryRecord) that mask names.
func checkLoad(t *testing.T, mask int, log persistence.Reader, cfg *Config, seen time.Time) {
	t.Helper()
	s, err := Load("alice", log, cfg)
	if err != nil {
		t.Fatalf("records %b in %T: %v", mask, log, err)
	}
	has := func(i int) bool { return mask&(1<<i) != 0 }
	if s.Exists() != has(0) || (s.Profile().Name == "Alice") != has(0) {
		t.Errorf("records %b in %T: exists %v profile %+v", mask, log, s.Exists(), s.Profile())
	}
	if _, ok := s.channels["general"]; ok != has(1) {
		t.Errorf("records %b in %T: channels %v", mask, log, s.channels)
	}
	if s.presence.lastSeen.Equal(seen) != has(2) {
		t.Errorf("records %b in %T: last seen %v", mask, log, s.presence.lastSeen)
	}
	if (s.files.count == 2) != has(3) || !has(3) && s.files.count != 0 {
		t.Errorf("records %b in %T: file count %d", mask, log, s.files.count)
	}
	if _, perr := s.file("f1"); (perr == nil) != has(4) {
		t.Errorf("records %b in %T: file f1: %v", mask, log, perr)
	}
}
