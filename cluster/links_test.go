package cluster

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/remote"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// noticeRecorder is a gateway handler that keeps the WatchLost notices
// ("channel|node").
type noticeRecorder struct {
	mu      sync.Mutex
	notices []string
}

func (r *noticeRecorder) Events(*clusterpb.Events)         {}
func (r *noticeRecorder) Unwatch(*clusterpb.Unwatch)       {}
func (r *noticeRecorder) EventsShed([]string, bool)        {}
func (r *noticeRecorder) Sheddable(*clusterpb.Events) bool { return false }

func (r *noticeRecorder) WatchLost(w *clusterpb.WatchLost) {
	r.mu.Lock()
	r.notices = append(r.notices, w.Channel+"|"+w.Node)
	r.mu.Unlock()
}

func (r *noticeRecorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.notices)
}

// TestSendWhenLinked: a message for a node whose link is known broken
// waits until the link is back, and is dropped if it does not come back
// in time.
func TestSendWhenLinked(t *testing.T) {
	net := NewMemNetwork()
	a := memNode(t, net, "a")
	b := memNode(t, net, "b", a.GossipAddress())
	rec := &noticeRecorder{}
	b.SetHandler(rec)
	waitUntil(t, 10*time.Second, "a to see b", func() bool { _, ok := a.View().Member("b"); return ok })
	env := func() *clusterpb.Envelope {
		return clusterpb.Wrap(&clusterpb.Envelope_WatchLost{WatchLost: &clusterpb.WatchLost{Node: "a"}})
	}
	broken := func() {
		a.links.mu.Lock()
		a.links.down[b.Address()] = &linkDown{since: time.Now(), probed: time.Now()}
		a.links.mu.Unlock()
	}

	a.SendWhenLinked(b.Address(), env(), time.Second) // the link works: at once
	waitUntil(t, 5*time.Second, "the notice over a working link", func() bool { return len(rec.got()) == 1 })

	broken()
	a.SendWhenLinked(b.Address(), env(), 100*time.Millisecond) // given up
	a.SendWhenLinked(b.Address(), env(), 10*time.Second)
	time.Sleep(300 * time.Millisecond) // nothing may arrive while the link is down
	if n := len(rec.got()); n != 1 {
		t.Fatalf("%d notices while the link was down", n-1)
	}
	a.System().EventStream.Publish(&remote.EndpointConnectedEvent{Address: b.Address()})
	waitUntil(t, 5*time.Second, "the notice once the link is back", func() bool { return len(rec.got()) == 2 })
	time.Sleep(200 * time.Millisecond)
	if n := len(rec.got()); n != 2 {
		t.Fatalf("%d notices in all, want 2: the one given up arrived", n)
	}
}
