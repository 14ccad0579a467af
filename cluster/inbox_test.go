package cluster

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// recordingHandler records what the inbox hands it.
type recordingHandler struct {
	mu     sync.Mutex
	events []string // "channel/seq" in the order handled
	shed   [][]string
	all    int
}

func (h *recordingHandler) Events(ev *clusterpb.Events) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range ev.Events {
		h.events = append(h.events, fmt.Sprintf("%s/%d", ev.Channel, e.Seq))
	}
}

func (h *recordingHandler) Unwatch(*clusterpb.Unwatch)     {}
func (h *recordingHandler) WatchLost(*clusterpb.WatchLost) {}

func (h *recordingHandler) EventsShed(channels []string, all bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if all {
		h.all++
	}
	slices.Sort(channels)
	h.shed = append(h.shed, channels)
	h.events = append(h.events, "shed")
}

func (h *recordingHandler) Sheddable(ev *clusterpb.Events) bool { return ev.Channel != "presence" }

func (h *recordingHandler) snapshot() ([]string, [][]string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events), slices.Clone(h.shed), h.all
}

func eventsOfSize(ch string, seq uint64, frameBytes int) *clusterpb.Envelope {
	return clusterpb.Wrap(&clusterpb.Envelope_Events{Events: &clusterpb.Events{Channel: ch,
		Events: []*clusterpb.Event{{Seq: seq, Frame: []byte(strings.Repeat("x", frameBytes))}}}})
}

// inboxCluster starts a node whose inbox holds limit bytes of events.
func inboxCluster(t *testing.T, limit int64) (*Cluster, *recordingHandler) {
	t.Helper()
	c, err := New(Config{Name: "n", Detection: DetectionFast, ClusterName: "test-" + t.Name(), InboxEventBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &recordingHandler{}
	c.SetHandler(h)
	return c, h
}

// block keeps the inbox busy until the returned channel is closed.
func (c *Cluster) block() chan struct{} {
	release := make(chan struct{})
	c.Do(func() { <-release })
	return release
}

// TestInboxShedsEventsPastItsBound: behind a busy inbox, event batches
// queue up to InboxEventBytes; past it they are shed, and the channels
// that lost persisted events are reported once, in the place of the
// first shed batch. Ephemeral-only batches are shed without a report, and
// batches the handler says may not be shed are always taken.
func TestInboxShedsEventsPastItsBound(t *testing.T) {
	c, h := inboxCluster(t, 1000)
	release := c.block()
	send := func(env *clusterpb.Envelope) { c.system.Root.Send(c.inbox, env) }

	send(eventsOfSize("a", 1, 400))        // 417 bytes: taken
	send(eventsOfSize("a", 2, 400))        // 834: taken
	send(eventsOfSize("b", 1, 400))        // would be 1251: shed, b reported
	send(eventsOfSize("typing", 0, 400))   // shed, ephemeral: not reported
	send(eventsOfSize("presence", 0, 400)) // may not be shed: taken
	send(eventsOfSize("b", 2, 400))        // shed; b already awaits its report
	send(eventsOfSize("c", 7, 400))        // shed, c reported with b
	waitUntil(t, 10*time.Second, "seven posts", func() bool { return c.InboxDepth() >= 5 })

	if got, want := c.InboxShed(), uint64(4); got != want {
		t.Errorf("shed %d batches, want %d", got, want)
	}
	if got, want := c.InboxEventBytes(), int64(834+424); got != want {
		t.Errorf("queued %d event bytes, want %d", got, want)
	}
	close(release)
	waitUntil(t, 10*time.Second, "the inbox to drain", func() bool { return c.InboxDepth() == 0 })
	events, shed, all := h.snapshot()
	if want := []string{"a/1", "a/2", "shed", "presence/0"}; !slices.Equal(events, want) {
		t.Errorf("handled %v, want %v", events, want)
	}
	if len(shed) != 1 || !slices.Equal(shed[0], []string{"b", "c"}) || all != 0 {
		t.Errorf("reports %v (all %d), want one of [b c]", shed, all)
	}
	if n := c.InboxEventBytes(); n != 0 {
		t.Errorf("%d event bytes still counted after the drain", n)
	}

	// A later shed is reported again; a batch that finds the queue empty
	// is taken whatever its size.
	release = c.block()
	send(eventsOfSize("d", 1, 5000))
	send(eventsOfSize("e", 1, 10))
	waitUntil(t, 10*time.Second, "two posts", func() bool { return c.InboxDepth() >= 2 })
	close(release)
	waitUntil(t, 10*time.Second, "the inbox to drain", func() bool { return c.InboxDepth() == 0 })
	events, shed, _ = h.snapshot()
	if want := []string{"d/1", "shed"}; !slices.Equal(events[4:], want) || len(shed) != 2 || !slices.Equal(shed[1], []string{"e"}) {
		t.Errorf("handled %v with reports %v, want d/1 then a report of [e]", events[4:], shed)
	}
}

// TestInboxShedReportOverflows: past maxShedNames channels a report says
// every channel may have lost events instead of naming them.
func TestInboxShedReportOverflows(t *testing.T) {
	c, h := inboxCluster(t, 100)
	release := c.block()
	c.system.Root.Send(c.inbox, eventsOfSize("first", 1, 100))
	for i := range maxShedNames + 1 {
		c.system.Root.Send(c.inbox, eventsOfSize(fmt.Sprint("ch", i), 1, 1))
	}
	close(release)
	waitUntil(t, 10*time.Second, "a report", func() bool { _, shed, _ := h.snapshot(); return len(shed) > 0 })
	waitUntil(t, 10*time.Second, "the inbox to drain", func() bool { return c.InboxDepth() == 0 })
	_, shed, all := h.snapshot()
	if len(shed) != 1 || all != 1 || len(shed[0]) != 0 {
		t.Errorf("%d reports, %d of all, first names %d channels; want one report of all", len(shed), all, len(shed[0]))
	}
}
