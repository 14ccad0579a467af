package persistence

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestCloseIsIdempotent(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Close() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close again: %v", err)
	}
}

// noPanic runs f and turns a panic into a test failure.
func noPanic(t *testing.T, what string, f func() error) error {
	t.Helper()
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("%s panicked: %v", what, p)
			}
		}()
		err = f()
	}()
	return err
}

func TestUseAfterClose(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	l := s.Channel("c")
	mustFence(t, l, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	wantErr(t, "append", appendWait(t, l, put(1, TableAux, "k", "v")), ErrClosed)
	wantErr(t, "fence", fenceWait(t, l, 2), ErrClosed)
	wantErr(t, "restore", s.Restore(&Snapshot{Scope: Scope{Kind: KindChannel, ID: "c"}}, 5), ErrClosed)
	reads := map[string]func() error{
		"get":      func() error { _, err := l.Get(TableAux, []byte("k")); return err },
		"scan":     func() error { _, err := l.Scan(TableAux, Range{}); return err },
		"epoch":    func() error { _, err := l.Epoch(); return err },
		"snapshot": func() error { _, err := l.Snapshot(); return err },
		"scopes":   func() error { return s.Scopes(KindChannel, func(string, uint64) bool { return true }) },
	}
	for name, read := range reads {
		if err := noPanic(t, name, read); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after close: %v, want ErrClosed", name, err)
		}
	}
}

// TestCloseRacesReads closes the store under readers of every kind: each
// read either succeeds or fails with ErrClosed, and none reaches the
// closed database.
func TestCloseRacesReads(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	l := s.Channel("c")
	mustFence(t, l, 1)
	mustAppend(t, l, put(1, TableAux, "k", "v"))
	reads := []func() error{
		func() error { _, err := l.Get(TableAux, []byte("k")); return err },
		func() error { _, err := l.Scan(TableAux, Range{}); return err },
		func() error { _, err := l.Epoch(); return err },
		func() error { _, err := l.Snapshot(); return err },
		func() error { return s.Scopes(KindChannel, func(string, uint64) bool { return true }) },
	}
	var wg sync.WaitGroup
	started := make(chan struct{}, len(reads))
	for i, read := range reads {
		wg.Go(func() {
			for n := 0; ; n++ {
				err := noPanic(t, fmt.Sprint("read ", i), read)
				if n == 0 {
					started <- struct{}{}
				}
				switch {
				case errors.Is(err, ErrClosed):
					return
				case err != nil:
					t.Errorf("read %d: %v", i, err)
					return
				}
			}
		})
	}
	for range reads {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

// TestCloseAppliesQueuedEntries queues many entries without waiting and
// closes at once: every entry queued before Close lands and is called back
// before Close returns.
func TestCloseAppliesQueuedEntries(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs, MaxBatch: 16})
	if err != nil {
		t.Fatal(err)
	}
	const scopes, per = 20, 100
	for i := range scopes {
		mustFence(t, s.Channel(fmt.Sprint(i)), 1)
	}
	var ok, failed atomic.Int64
	for n := range per {
		for i := range scopes {
			s.Channel(fmt.Sprint(i)).Append(put(1, TableEvent, string(U64(uint64(n))), "v"), func(err error) {
				if err != nil {
					failed.Add(1)
					return
				}
				ok.Add(1)
			})
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ok.Load() != scopes*per || failed.Load() != 0 {
		t.Fatalf("after close: %d acknowledged, %d failed; want %d, 0", ok.Load(), failed.Load(), scopes*per)
	}
	r := openStore(t, fs, Options{})
	for i := range scopes {
		if n := len(mustScan(t, r.Channel(fmt.Sprint(i)), TableEvent, Range{})); n != per {
			t.Fatalf("scope %d: %d events after reopen, want %d", i, n, per)
		}
	}
}

// TestCloseRacesAppenders closes the store while appenders, some blocked
// on a full queue, keep appending: every callback runs exactly once, with
// nil or ErrClosed, and every acknowledged entry is there after reopening.
func TestCloseRacesAppenders(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs, MaxQueued: 8, MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	const scopes = 16
	for i := range scopes {
		mustFence(t, s.Channel(fmt.Sprint(i)), 1)
	}
	var acked atomic.Int64
	acks := make([][]bool, scopes) // by scope, by seq; each written by one callback
	calls := make([][]atomic.Int32, scopes)
	for i := range calls {
		calls[i] = make([]atomic.Int32, 100000)
	}
	var mu sync.Mutex // guards acks
	var wg sync.WaitGroup
	closing := make(chan struct{})
	for i := range scopes {
		wg.Go(func() {
			var pending sync.WaitGroup
			defer pending.Wait()
			closed := make(chan struct{})
			var once sync.Once
			for n := 0; n < len(calls[i]); n++ {
				select {
				case <-closed:
					return
				default:
				}
				pending.Add(1)
				s.Channel(fmt.Sprint(i)).Append(put(1, TableEvent, string(U64(uint64(n))), "v"), func(err error) {
					defer pending.Done()
					if calls[i][n].Add(1) != 1 {
						t.Errorf("scope %d entry %d called back twice", i, n)
					}
					switch {
					case err == nil:
						mu.Lock()
						for len(acks[i]) <= n {
							acks[i] = append(acks[i], false)
						}
						acks[i][n] = true
						mu.Unlock()
						if acked.Add(1) == 500 {
							close(closing)
						}
					case errors.Is(err, ErrClosed):
						once.Do(func() { close(closed) })
					default:
						t.Errorf("scope %d entry %d: %v", i, n, err)
					}
				})
			}
		})
	}
	<-closing
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	r := openStore(t, fs, Options{})
	for i := range scopes {
		recs := mustScan(t, r.Channel(fmt.Sprint(i)), TableEvent, Range{})
		have := make(map[uint64]bool, len(recs))
		for _, rec := range recs {
			n, _ := ParseU64(rec.Key)
			have[n] = true
		}
		for n, a := range acks[i] {
			if a && !have[uint64(n)] {
				t.Fatalf("scope %d: acknowledged entry %d missing after reopen", i, n)
			}
		}
	}
}
