package persistence

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

func TestNewStoreIsStampedAndKeepsItsIdentity(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Identity()
	if err != nil || id.Store == 0 || id.Cluster != "" || s.Stage1() {
		t.Fatalf("identity %+v %v, stage1 %v", id, err, s.Stage1())
	}
	if err := s.SetCluster("c1", 64); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, fs, Options{})
	again, _ := s.Identity()
	if again != (Identity{Store: id.Store, Cluster: "c1", Shards: 64}) {
		t.Fatalf("after reopen %+v", again)
	}
	// Another data directory is another store.
	other, _ := memStore(t).Identity()
	if other.Store == id.Store {
		t.Fatal("two stores share an id")
	}
}

func TestUnknownFormatIsRefused(t *testing.T) {
	fs := vfs.NewMem()
	db, err := pebble.Open("db", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(raftstore.NodeKey(recFormat), U64(FormatVersion+1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open("db", Options{FS: fs}); !errors.Is(err, ErrFormat) {
		t.Fatalf("opened a store of another format: %v", err)
	}
}

// stage1Key builds a key of the stage-1 layout.
func stage1Key(kind byte, id string, table byte, key string) []byte {
	b := []byte{kind, byte(len(id))}
	b = append(b, id...)
	b = append(b, table)
	return append(b, key...)
}

func TestStage1StoreIsMigrated(t *testing.T) {
	fs := vfs.NewMem()
	db, err := pebble.Open("db", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		// A channel this node served: it moves.
		string(stage1Key('c', "general", stage1Fence, "")): string(U64(3)),
		string(stage1Key('c', "general", 'a', "")):         "meta",
		string(stage1Key('c', "general", 'm', "\x00\x01")): "hello",
		// A channel handed off to another node: dropped.
		string(stage1Key('c', "moved", stage1Fence, "")): string(append(U64(4), append([]byte{1}, "n2"...)...)),
		string(stage1Key('c', "moved", 'a', "")):         "stale",
		// A user this node served.
		string(stage1Key('u', "alice", stage1Fence, "")): string(U64(1)),
		string(stage1Key('u', "alice", 'a', "")):         "profile",
		// The node's registry.
		string(stage1Key('n', "", 'a', "registry")): "[]",
	} {
		if err := db.Set([]byte(k), []byte(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Stage1() {
		t.Fatal("stage-1 data not detected")
	}
	if id, _ := s.Identity(); id.Store != 0 {
		t.Fatal("a stage-1 store was stamped before migration")
	}
	ch, us, err := s.Stage1Summary()
	if err != nil || ch != 1 || us != 1 {
		t.Fatalf("summary: %d channels, %d users, %v", ch, us, err)
	}
	shardOf := func(sc Scope) uint32 {
		if sc.Kind == KindUser {
			return 5
		}
		return 9
	}
	moved, err := s.MigrateStage1(shardOf)
	if err != nil || moved != 2 || s.Stage1() {
		t.Fatalf("migrated %d: %v", moved, err)
	}
	s.Close()

	s = openStore(t, fs, Options{})
	if s.Stage1() {
		t.Fatal("still stage 1 after migration")
	}
	if id, _ := s.Identity(); id.Store == 0 {
		t.Fatal("not stamped")
	}
	general := s.Reader(9, Scope{KindChannel, "general"})
	if mustGet(t, general, TableMeta, "") != "meta" || mustGet(t, general, TableMessage, "\x00\x01") != "hello" {
		t.Fatal("the channel's records did not move")
	}
	if mustGet(t, s.Reader(5, Scope{KindUser, "alice"}), TableMeta, "") != "profile" {
		t.Fatal("the user did not move")
	}
	if _, err := s.Reader(9, Scope{KindChannel, "moved"}).Get(TableMeta, nil); !errors.Is(err, ErrNotFound) {
		t.Fatal("a handed-off copy was migrated")
	}
	if v, err := s.GetNode("registry"); err != nil || string(v) != "[]" {
		t.Fatalf("registry %q %v", v, err)
	}
	it, _ := s.db.NewIter(&pebble.IterOptions{LowerBound: stage1Lower})
	defer it.Close()
	if it.First() {
		t.Fatalf("stage-1 key left: %q", it.Key())
	}
}
