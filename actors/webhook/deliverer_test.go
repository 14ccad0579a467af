package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/protocol"
)

// fakeSource is channels held in memory: events 1..last, the oldest
// retained from first, and the acknowledged position.
type fakeSource struct {
	mu    sync.Mutex
	chans map[string]*fakeChan
	acks  atomic.Int64
}

type fakeChan struct {
	first, last, delivered uint64
}

func (f *fakeSource) Fetch(_ context.Context, ch string) (*channel.WebhookBatch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.chans[ch]
	if c == nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no channel")
	}
	b := &channel.WebhookBatch{Delivered: c.delivered, LastSeq: c.last, Events: []json.RawMessage{}}
	from := c.delivered + 1
	if from < c.first {
		b.GapFrom, b.GapTo, from = from, c.first-1, c.first
	}
	for seq := from; seq <= c.last && len(b.Events) < 7; seq++ {
		name := protocol.EventMessageNew
		if seq%3 == 0 {
			name = protocol.EventTyping // filtered out below
		}
		b.Events = append(b.Events, json.RawMessage(fmt.Sprintf(`{"event":%q,"channel":%q,"seq":%d,"data":{},"at":null}`, name, ch, seq)))
	}
	return b, nil
}

func (f *fakeSource) Ack(_ context.Context, ch string, seq uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acks.Add(1)
	if c := f.chans[ch]; c != nil && seq > c.delivered {
		c.delivered = seq
	}
	return nil
}

func (f *fakeSource) Owned(ch string) bool { return ch != "elsewhere" }

// receiver records what it is sent, and misbehaves as told.
type receiver struct {
	t      *testing.T
	secret string
	mode   atomic.Value // "ok", "fail", "hang", "redirect", "huge"
	mu     sync.Mutex
	got    map[string][]uint64 // channel → seqs in the order received
	gaps   []GapData
	bad    int // requests with a bad signature
	posts  atomic.Int64
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.posts.Add(1)
	body, _ := io.ReadAll(req.Body)
	switch r.mode.Load().(string) {
	case "fail":
		http.Error(w, "down", http.StatusInternalServerError)
		return
	case "hang":
		select {
		case <-req.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	case "redirect":
		http.Redirect(w, req, "/elsewhere", http.StatusTemporaryRedirect)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !Verify(r.secret, body, req.Header.Get(SignatureHeader)) {
		r.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var b struct {
		Events []struct {
			Event   string          `json:"event"`
			Channel string          `json:"channel"`
			Seq     uint64          `json:"seq"`
			Data    json.RawMessage `json:"data"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		r.t.Errorf("body %s: %v", body, err)
	}
	for _, ev := range b.Events {
		if ev.Event == GapEvent {
			var g GapData
			_ = json.Unmarshal(ev.Data, &g)
			r.gaps = append(r.gaps, g)
			continue
		}
		r.got[ev.Channel] = append(r.got[ev.Channel], ev.Seq)
	}
	if r.mode.Load().(string) == "huge" {
		// A reply that never ends: read up to the bound, then dropped.
		w.WriteHeader(http.StatusOK)
		chunk := strings.Repeat("x", 32<<10)
		for i := 0; i < 1000; i++ {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Every event is delivered at least once, in seq order per channel,
// signed, whatever the receiver does before it recovers: failures,
// timeouts, redirects, a reply that never ends.
func TestDeliveryAtLeastOnceInOrderThroughFailures(t *testing.T) {
	rcv := &receiver{t: t, secret: "s3cret", got: map[string][]uint64{}}
	rcv.mode.Store("fail")
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	src := &fakeSource{chans: map[string]*fakeChan{}}
	for i := 0; i < 5; i++ {
		src.chans[fmt.Sprint("c", i)] = &fakeChan{first: 1, last: 40}
	}
	src.chans["trimmed"] = &fakeChan{first: 11, last: 15}
	var mu sync.Mutex
	results := map[string]int{}
	var lost atomic.Uint64
	d := New(Config{URL: srv.URL, Secret: "s3cret", Timeout: 150 * time.Millisecond, MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 40 * time.Millisecond, Workers: 3, MaxReplyBytes: 1 << 10,
		Events: []string{protocol.EventMessageNew},
		Metrics: &Metrics{Delivery: func(r string, _ time.Duration) { mu.Lock(); results[r]++; mu.Unlock() },
			Gap: func(n uint64) { lost.Add(n) }}}, src)
	defer d.Close()
	for ch, c := range src.chans {
		d.Pending(ch, c.last, 0)
	}
	d.Pending("elsewhere", 3, 0) // not this node's: dropped
	seen := func(r string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return results[r] > 0 }
	}
	waitFor(t, "failures", seen("failed"))
	rcv.mode.Store("hang")
	waitFor(t, "timeouts", seen("timeout"))
	rcv.mode.Store("redirect")
	before := src.acks.Load()
	waitFor(t, "redirects refused", func() bool { mu.Lock(); defer mu.Unlock(); return results["failed"] > 3 })
	if src.acks.Load() != before {
		t.Fatal("a redirect was taken as an acknowledgement")
	}
	rcv.mode.Store("huge")
	waitFor(t, "a huge reply read", seen("ok"))
	rcv.mode.Store("ok")
	waitFor(t, "every channel delivered", func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		for _, c := range src.chans {
			if c.delivered != c.last {
				return false
			}
		}
		return true
	})
	waitFor(t, "backlog drained", func() bool { return d.Backlog() == 0 })
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.bad > 0 {
		t.Errorf("%d requests with a bad signature", rcv.bad)
	}
	for ch, c := range src.chans {
		got := rcv.got[ch]
		// In order, redeliveries starting over from an acknowledged
		// point: every seq comes at most one past the highest before it.
		high := c.first - 1
		for _, seq := range got {
			next := high + 1
			for next%3 == 0 {
				next++ // filtered: never sent
			}
			if seq > next {
				t.Fatalf("%s: %d after %d (%v)", ch, seq, high, got)
			}
			high = max(high, seq)
		}
		want := map[uint64]bool{}
		for seq := c.first; seq <= c.last; seq++ {
			if seq%3 != 0 {
				want[seq] = true
			}
		}
		for _, seq := range got {
			if seq%3 == 0 {
				t.Errorf("%s: filtered event %d delivered", ch, seq)
			}
			delete(want, seq)
		}
		if len(want) > 0 {
			t.Errorf("%s: never delivered %v", ch, want)
		}
	}
	if len(rcv.gaps) == 0 || rcv.gaps[0] != (GapData{FromSeq: 1, ToSeq: 10, Lost: 10}) || lost.Load() != 10 {
		t.Errorf("gaps %+v, lost %d", rcv.gaps, lost.Load())
	}
}

func TestSignature(t *testing.T) {
	body := []byte(`{"events":[]}`)
	sig := Sign("k", body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 || !Verify("k", body, sig) || Verify("other", body, sig) {
		t.Errorf("signature %s", sig)
	}
}
