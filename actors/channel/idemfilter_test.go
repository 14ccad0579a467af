package channel

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestIdemFilterKnowsEveryKey: every key added is a "maybe"; of keys
// never added, about 1 % are.
func TestIdemFilterKnowsEveryKey(t *testing.T) {
	const n = 20000
	f := newIdemFilter(n)
	for i := range n {
		f.add(idemStoreKey(fmt.Sprint("u", i%50), fmt.Sprint("c", i)))
	}
	falses := 0
	for i := range n {
		if !f.mayHave(idemStoreKey(fmt.Sprint("u", i%50), fmt.Sprint("c", i))) {
			t.Fatalf("key %d added, then not there", i)
		}
		if f.mayHave(idemStoreKey(fmt.Sprint("u", i%50), fmt.Sprint("x", i))) {
			falses++
		}
	}
	if rate := float64(falses) / n; rate > 0.03 {
		t.Fatalf("%.1f %% of new keys read the store", 100*rate)
	}
	if !f.full() {
		t.Fatal("a filter holding its limit is not full")
	}
}

// sent sends with clientID and reports whether the reply was a resend's.
func (h *harness) sent(user, clientID string) bool {
	h.t.Helper()
	type sendResult struct {
		Duplicate bool `json:"duplicate"`
	}
	return ok[sendResult](h, caller(user), protocol.OpMessageSend,
		map[string]any{"channel": channelID, "client_id": clientID, "text": "x"}).Duplicate
}

// TestNewClientIDsReadNoStore: once the filter is built (one scan of the
// idempotency table), a send with a new client id reads no key from the
// store; a resend still finds its original, also after a reload (the
// filter is built again from the store) and after the filter fills and
// is rebuilt larger.
func TestNewClientIDsReadNoStore(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.IdemCache = 1 })
	h.create("alice", protocol.TypeStandard, nil)
	h.r.idemGets, h.r.idemScans = 0, 0
	for i := range 50 {
		if h.sent("alice", fmt.Sprint("c", i)) {
			t.Fatalf("send %d was taken for a resend", i)
		}
	}
	if h.r.idemGets > 3 || h.r.idemScans != 1 {
		t.Fatalf("50 new client ids read %d keys and scanned %d times", h.r.idemGets, h.r.idemScans)
	}
	for _, i := range []int{0, 17, 49} {
		if !h.sent("alice", fmt.Sprint("c", i)) {
			t.Fatalf("resend of c%d was not a resend", i)
		}
	}
	h.reload()
	h.r.idemScans = 0
	for _, i := range []int{3, 48} {
		if !h.sent("alice", fmt.Sprint("c", i)) {
			t.Fatalf("resend of c%d after a reload was not a resend", i)
		}
	}
	// Past the filter's size (1024 keys here) it is rebuilt, larger.
	for i := 50; i < 1500; i++ {
		h.sent("alice", fmt.Sprint("c", i))
	}
	if h.r.idemScans < 2 {
		t.Fatalf("%d scans: the full filter was not rebuilt", h.r.idemScans)
	}
	for _, i := range []int{1, 1023, 1499} {
		if !h.sent("alice", fmt.Sprint("c", i)) {
			t.Fatalf("resend of c%d after the filter grew was not a resend", i)
		}
	}
}

// TestIdemFilterHoldsUnstoredKeys: a filter built while sends are not yet
// in the store (their entries pending) holds their keys all the same, so
// once they are stored, and gone from the cache, a resend is still one.
func TestIdemFilterHoldsUnstoredKeys(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.IdemCache = 1 })
	h.create("alice", protocol.TypeStandard, nil)
	h.manual = true
	h.sent("alice", "early")
	h.s.idemF = nil // as when a full filter is dropped: the next send builds one
	h.sent("alice", "later")
	h.manual = false
	h.commit()
	h.sent("alice", "evicts") // the cache holds one key
	if !h.sent("alice", "early") {
		t.Fatal("a key pending when the filter was built was forgotten: the resend made a second message")
	}
}

// TestImportedClientIDsAreResends: an import writes its messages' client
// ids past the send path; the filter, already built, learns them, so a
// send with an imported client id is a resend of the imported message.
func TestImportedClientIDsAreResends(t *testing.T) {
	h := newHarnessFor(t, "imp", func(c *Config) { c.IdemCache = 1 })
	ok[createResult](h, caller("zed"), protocol.OpChannelCreate, `{"type":"standard"}`)
	ok[sendRes](h, caller("zed"), protocol.OpMessageSend, `{"channel":"imp","client_id":"live-1","text":"live"}`)
	if h.s.idemF == nil {
		t.Fatal("no filter after a send")
	}
	last := h.s.LastSegment()
	rec := fmt.Sprintf(`{"kind":"message","id":"old-1","channel":"imp","segment":%d,"user":"zed","text":"imported","client_id":"imp-1","created_at":%q}`,
		last+1, t0.Format(time.RFC3339))
	if rep := h.importAll("tok", []string{rec}, 1); len(rep.Errors) > 0 || rep.Messages != 1 {
		t.Fatalf("import: %+v", rep)
	}
	ok[sendRes](h, caller("zed"), protocol.OpMessageSend, `{"channel":"imp","client_id":"evicts","text":"x"}`)
	type sendResult struct {
		Message   protocol.Message `json:"message"`
		Duplicate bool             `json:"duplicate"`
	}
	r := ok[sendResult](h, caller("zed"), protocol.OpMessageSend, `{"channel":"imp","client_id":"imp-1","text":"again"}`)
	if !r.Duplicate || r.Message.Segment != last+1 {
		t.Fatalf("a send with an imported client id: %+v", r)
	}
}
