package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/actors/webhook"
)

// hookReceiver is a webhook receiver that records what it gets and, as
// told, fails (500) or hangs (no reply within the node's timeout).
type hookReceiver struct {
	secret string
	mode   atomic.Value // "fail", "hang", "ok"
	failed atomic.Int64 // 500s answered
	hung   atomic.Int64 // requests the node gave up on

	mu     sync.Mutex
	got    map[string][]uint64 // channel → seqs, in the order received
	badSig int
	kinds  map[string]int
}

func newHookReceiver(secret string) *hookReceiver {
	r := &hookReceiver{secret: secret, got: map[string][]uint64{}, kinds: map[string]int{}}
	r.mode.Store("ok")
	return r
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	switch r.mode.Load().(string) {
	case "fail":
		r.failed.Add(1)
		http.Error(w, "unavailable", http.StatusInternalServerError)
		return
	case "hang":
		select {
		case <-req.Context().Done():
			r.hung.Add(1)
		case <-time.After(20 * time.Second):
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !webhook.Verify(r.secret, body, req.Header.Get(webhook.SignatureHeader)) {
		r.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var b struct {
		Events []struct {
			Event   string `json:"event"`
			Channel string `json:"channel"`
			Seq     uint64 `json:"seq"`
			At      string `json:"at"`
		} `json:"events"`
	}
	if json.Unmarshal(body, &b) != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	for _, e := range b.Events {
		r.got[e.Channel] = append(r.got[e.Channel], e.Seq)
		r.kinds[e.Event]++
	}
	w.WriteHeader(http.StatusOK)
}

// delivered reports whether every channel got every seq up to its count.
func (r *hookReceiver) delivered(want map[string]uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch, n := range want {
		have := map[uint64]bool{}
		for _, s := range r.got[ch] {
			have[s] = true
		}
		for s := uint64(1); s <= n; s++ {
			if !have[s] {
				return false
			}
		}
	}
	return true
}

// Webhooks to a receiver that fails, then times out, then recovers, with
// the node killed (SIGKILL) and restarted in between: every event of every
// channel is delivered at least once, in seq order per channel (a
// redelivery starts again from an acknowledged point, never skips ahead),
// every batch signed. One channel gets no event after the restart: its
// backlog is found by the node's start-up scan.
func TestWebhooksThroughFailuresAndARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	t.Parallel()
	rcv := newHookReceiver("hook-secret")
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	dir := t.TempDir()
	args := []string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", dir, "--node-name", "h1",
		"--failure-detection", "fast", "--api-key", apiKey, "--webhook-url", srv.URL, "--webhook-secret", "hook-secret",
		"--webhook-events", "message.new,message.updated,reaction.updated,channel.updated",
		"--test-webhook-timing", "300ms,20ms,200ms"}
	p := startProc(t, args...)
	a := keyAPI(t, p, "owner")
	channels := []string{"w0", "w1", "w2"}
	want := map[string]uint64{}
	send := func(p *proc, n int) {
		a := keyAPI(t, p, "owner")
		for _, ch := range channels {
			for i := 0; i < n; i++ {
				if ch == "w0" && want[ch] >= 20 {
					break // w0 gets nothing after the restart
				}
				body := map[string]any{"text": fmt.Sprint("m", want[ch])}
				untilElected(t, a, "POST", "/v1/channels/"+ch+"/messages", body).want(t, 201, "")
				want[ch]++
			}
		}
	}
	rcv.mode.Store("fail")
	for _, ch := range channels {
		untilElected(t, a, "POST", "/v1/channels", map[string]any{"id": ch, "type": "standard"}).want(t, 201, "")
	}
	send(p, 10)
	waitFor(t, 20*time.Second, "failed deliveries", func() bool { return rcv.failed.Load() >= 3 })
	rcv.mode.Store("hang")
	waitFor(t, 20*time.Second, "deliveries the node gave up on", func() bool { return rcv.hung.Load() >= 2 })
	rcv.mode.Store("ok")
	waitFor(t, 20*time.Second, "first deliveries", func() bool { return rcv.delivered(map[string]uint64{"w1": 5}) })
	rcv.mode.Store("fail")
	send(p, 10) // a backlog the node is killed with
	p.kill()

	p = startProc(t, args...)
	rcv.mode.Store("ok")
	send(p, 5)
	waitFor(t, 30*time.Second, "every event delivered", func() bool { return rcv.delivered(want) })
	waitFor(t, 10*time.Second, "the backlog metric at 0", func() bool {
		m := scrapeAddr(t, p.addr)
		return strings.Contains(m, "\nswitchboard_webhook_backlog_events 0\n") &&
			!strings.Contains(m, `switchboard_webhook_deliveries_total{result="ok"} 0`) &&
			strings.Contains(m, "switchboard_webhook_latency_seconds_count") && strings.Contains(m, "switchboard_webhook_gaps_total 0")
	})

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.badSig > 0 {
		t.Errorf("%d batches with a bad signature", rcv.badSig)
	}
	for ch, seqs := range rcv.got {
		high := uint64(0)
		for i, s := range seqs {
			if s > high+1 {
				t.Fatalf("%s: seq %d after %d (skipped ahead): %v", ch, s, high, seqs[:i+1])
			}
			high = max(high, s)
		}
		if high != want[ch] {
			t.Errorf("%s: up to seq %d, %d events sent", ch, high, want[ch])
		}
	}
	if rcv.kinds["message.new"] < int(want["w0"]+want["w1"]+want["w2"]) || len(rcv.kinds) != 1 {
		t.Errorf("events by kind %v", rcv.kinds)
	}
	if !slices.Contains(channels, "w0") || want["w0"] != 20 {
		t.Errorf("w0 sent %d", want["w0"])
	}
}

// scrapeAddr returns the /metrics of the node at addr.
func scrapeAddr(t *testing.T, addr string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey) // an operator endpoint
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// untilElected makes a request, again while the node answers 503 (a node
// just started or restarted may not have elected its shards' leaders
// yet, and a client retries), for at most 10 s.
func untilElected(t *testing.T, a api, method, path string, body any) reply {
	t.Helper()
	var r reply
	waitFor(t, 10*time.Second, "an answer other than 503 to "+method+" "+path, func() bool {
		r = a.do(method, path, body)
		return r.status != http.StatusServiceUnavailable
	})
	return r
}
