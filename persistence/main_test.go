package persistence

import (
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// Store must be closed, every pipeline joined.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit bounds every wait for a callback; a test that reaches it has
// found a lost or deadlocked callback.
const waitLimit = 20 * time.Second

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

// wait returns the error sent on ch, failing the test if none arrives in time.
func wait(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitLimit):
		t.Fatalf("no callback within %v", waitLimit)
		return nil
	}
}

// callback returns a done func and the channel it reports on.
func callback() (func(error), <-chan error) {
	ch := make(chan error, 1)
	return func(err error) { ch <- err }, ch
}

// appendWait appends e and waits for its callback.
func appendWait(t testing.TB, l Log, e *Entry) error {
	t.Helper()
	done, ch := callback()
	l.Append(e, done)
	return wait(t, ch)
}

// fenceWait raises l's fence and waits for the callback.
func fenceWait(t testing.TB, l Log, epoch uint64) error {
	t.Helper()
	done, ch := callback()
	l.Fence(epoch, done)
	return wait(t, ch)
}

// mustFence raises l's fence, failing the test on error.
func mustFence(t testing.TB, l Log, epoch uint64) {
	t.Helper()
	if err := fenceWait(t, l, epoch); err != nil {
		t.Fatalf("fence %d: %v", epoch, err)
	}
}

// mustAppend appends e, failing the test on error.
func mustAppend(t testing.TB, l Log, e *Entry) {
	t.Helper()
	if err := appendWait(t, l, e); err != nil {
		t.Fatalf("append: %v", err)
	}
}

// put returns an entry of one put.
func put(epoch uint64, tab Table, key, value string) *Entry {
	e := &Entry{Epoch: epoch}
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
