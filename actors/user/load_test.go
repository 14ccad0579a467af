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
// whichever of its records exist, and a corrupt record fails the load.
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
	for mask := 0; mask < 1<<len(all); mask++ {
		log := persistence.NewMemLog()
		e := &persistence.Entry{}
		for i, r := range all {
			if mask&(1<<i) != 0 {
				e.Put(r.t, []byte(r.key), r.v)
			}
		}
		if !e.Empty() {
			log.Append(e, func(err error) {
				if err != nil {
					t.Fatal(err)
				}
			})
		}
		s, err := Load("alice", log, &cfg)
		if err != nil {
			t.Fatalf("records %b: %v", mask, err)
		}
		has := func(i int) bool { return mask&(1<<i) != 0 }
		if s.Exists() != has(0) || (s.Profile().Name == "Alice") != has(0) {
			t.Errorf("records %b: exists %v profile %+v", mask, s.Exists(), s.Profile())
		}
		if _, ok := s.channels["general"]; ok != has(1) {
			t.Errorf("records %b: channels %v", mask, s.channels)
		}
		if s.presence.lastSeen.Equal(seen) != has(2) {
			t.Errorf("records %b: last seen %v", mask, s.presence.lastSeen)
		}
		if (s.files.count == 2) != has(3) || !has(3) && s.files.count != 0 {
			t.Errorf("records %b: file count %d", mask, s.files.count)
		}
		if _, perr := s.file("f1"); (perr == nil) != has(4) {
			t.Errorf("records %b: file f1: %v", mask, perr)
		}
	}
	for _, bad := range []rec{{persistence.TableAux, "presence", []byte("{")}, {persistence.TableAux, "files", []byte("x")}} {
		log := persistence.NewMemLog()
		e := &persistence.Entry{}
		e.Put(bad.t, []byte(bad.key), bad.v)
		log.Append(e, func(error) {})
		if _, err := Load("alice", log, &cfg); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("corrupt %s: %v", bad.key, err)
		}
	}
}
