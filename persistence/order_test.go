package persistence

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCallbacksInSubmissionOrder runs one pipelining submitter per scope,
// many scopes at once, mixing entries that land, entries refused by the
// fence and a fence raise, and checks that each scope's callbacks arrive in
// the order its requests were submitted, each with the right outcome.
func TestCallbacksInSubmissionOrder(t *testing.T) {
	configs := []struct {
		name string
		opts Options
	}{
		{"defaults", Options{}},
		// A short queue blocks submitters (back pressure) and small
		// batches spread a scope's requests over many groups.
		{"small-queue", Options{MaxQueued: 32, MaxBatch: 8}},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			orderRun(t, openStore(t, vfs.NewMem(), cfg.opts), 64, 300)
		})
	}
}

// callRecord is one callback as seen by the test.
type callRecord struct {
	index int
	err   error
}

func orderRun(t *testing.T, s *Store, scopes, perScope int) {
	const fenceAt = 150 // the request index that raises the fence to 2
	var wg sync.WaitGroup
	records := make([][]callRecord, scopes)
	var mu sync.Mutex // guards records
	for sc := range scopes {
		l := s.Channel(fmt.Sprintf("order-%d", sc))
		mustFence(t, l, 1)
		wg.Go(func() {
			var calls sync.WaitGroup
			defer calls.Wait()
			for i := range perScope {
				done := func(err error) {
					mu.Lock()
					records[sc] = append(records[sc], callRecord{i, err})
					mu.Unlock()
					calls.Done()
				}
				calls.Add(1)
				if i == fenceAt {
					l.Fence(2, done)
					continue
				}
				l.Append(put(orderEpoch(i, fenceAt), TableEvent, string(U64(uint64(i))), "v"), done)
			}
		})
	}
	wg.Wait()

	for sc, recs := range records {
		if len(recs) != perScope {
			t.Fatalf("scope %d: %d callbacks, want %d", sc, len(recs), perScope)
		}
		landed := 0
		for i, r := range recs {
			if r.index != i {
				t.Fatalf("scope %d: callback %d is for request %d", sc, i, r.index)
			}
			wantFenced := i != fenceAt && orderRefused(i)
			if wantFenced != errors.Is(r.err, ErrFenced) || !wantFenced && r.err != nil {
				t.Fatalf("scope %d request %d: err %v, want fenced=%v", sc, i, r.err, wantFenced)
			}
			if i != fenceAt && !wantFenced {
				landed++
			}
		}
		l := s.Channel(fmt.Sprintf("order-%d", sc))
		if got := len(mustScan(t, l, TableEvent, Range{})); got != landed {
			t.Fatalf("scope %d: %d events stored, want %d", sc, got, landed)
		}
	}
}

// orderRefused reports whether request i carries a stale epoch: every
// seventh one does.
func orderRefused(i int) bool { return i%7 == 3 }

// orderEpoch is request i's epoch: the current one (1 before the fence
// raise, 2 after) unless it is one of the refused ones, which carry the
// other.
func orderEpoch(i, fenceAt int) uint64 {
	cur, other := uint64(1), uint64(2)
	if i > fenceAt {
		cur, other = 2, 1
	}
	if orderRefused(i) {
		return other
	}
	return cur
}

// TestOnCommitCountsAppliedRequests checks that OnCommit reports every
// request that landed (entries and fences) once, and no refused one.
func TestOnCommitCountsAppliedRequests(t *testing.T) {
	var mu sync.Mutex // guards groups and total
	groups, total := 0, 0
	s := openStore(t, vfs.NewMem(), Options{MaxBatch: 4, OnCommit: func(_ time.Duration, n int) {
		mu.Lock()
		defer mu.Unlock()
		groups++
		total += n
	}})
	const scopes, per = 8, 50
	var wg sync.WaitGroup
	for i := range scopes {
		l := s.Channel(fmt.Sprint(i))
		mustFence(t, l, 1)
		wg.Go(func() {
			var calls sync.WaitGroup
			defer calls.Wait()
			for n := range per {
				calls.Add(1)
				epoch := uint64(1)
				if n%5 == 0 {
					epoch = 9 // refused
				}
				l.Append(put(epoch, TableEvent, string(U64(uint64(n))), "v"), func(error) { calls.Done() })
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if want := scopes + scopes*per*4/5; total != want {
		t.Fatalf("OnCommit counted %d requests in %d groups, want %d", total, groups, want)
	}
	if groups < (scopes+scopes*per*4/5)/4 {
		t.Fatalf("%d groups for %d requests with MaxBatch 4", groups, total)
	}
}
