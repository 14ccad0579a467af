package persistence

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openStore opens a Store in dir "db" on fs and closes it when the test ends.
func openStore(t testing.TB, fs vfs.FS, opts Options) *Store {
	t.Helper()
	opts.FS = fs
	s, err := Open("db", opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// memStore opens a Store on a fresh in-memory filesystem.
func memStore(t testing.TB) *Store {
	t.Helper()
	return openStore(t, vfs.NewMem(), Options{})
}

// applyNow is a proposer that applies each command at once, as the
// state machine of a single replica would, and calls back.
func applyNow(s *Store, shard uint32) func(cmd []byte, done func(error)) {
	return func(cmd []byte, done func(error)) {
		b := s.db.NewBatch()
		defer b.Close()
		if err := (StateMachine{}).Apply(b, shard, cmd); err != nil {
			done(err)
			return
		}
		done(b.Commit(pebble.Sync))
	}
}

// localLog is the log of a scope in shard 3 whose entries apply at once.
func localLog(s *Store, sc Scope) *ShardLog { return s.ShardLog(3, sc, applyNow(s, 3)) }

func chanLog(s *Store, id string) *ShardLog {
	return localLog(s, Scope{Kind: KindChannel, ID: id})
}

// appendWait appends e and returns its outcome (the local proposer calls
// back before Append returns).
func appendWait(l Log, e *Entry) error {
	var out error
	called := false
	l.Append(e, func(err error) { out, called = err, true })
	if !called {
		return errors.New("no callback")
	}
	return out
}

func mustAppend(t testing.TB, l Log, e *Entry) {
	t.Helper()
	if err := appendWait(l, e); err != nil {
		t.Fatalf("append: %v", err)
	}
}

// put returns an entry of one put.
func put(tab Table, key, value string) *Entry {
	e := &Entry{}
	e.Put(tab, []byte(key), []byte(value))
	return e
}

// wantErr fails the test unless errors.Is(got, want) (or both are nil).
func wantErr(t testing.TB, what string, got, want error) {
	t.Helper()
	if want == nil && got != nil || want != nil && !errors.Is(got, want) {
		t.Fatalf("%s: got error %v, want %v", what, got, want)
	}
}

// mustGet reads one record, failing the test on error.
func mustGet(t testing.TB, r Reader, tab Table, key string) string {
	t.Helper()
	v, err := r.Get(tab, []byte(key))
	if err != nil {
		t.Fatalf("get %c/%q: %v", tab, key, err)
	}
	return string(v)
}

// mustScan scans a table, failing the test on error.
func mustScan(t testing.TB, r Reader, tab Table, rg Range) []Record {
	t.Helper()
	recs, err := r.Scan(tab, rg)
	if err != nil {
		t.Fatalf("scan %c: %v", tab, err)
	}
	return recs
}

// keysOf returns the keys of recs as strings.
func keysOf(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Key)
	}
	return out
}
