package gateway

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestWatchTableUnderChurn drives the watch table with random histories
// of a channel whose owner changes (or goes down) all the time: event
// batches lost, delayed and delivered late, shed notices, WatchLost, view
// changes, rewatch replies that arrive in any order, fail unavailable or
// page with has_more, sessions that come and go. Whatever happens, every session
// gets each event at most once and in seq order (the event after its
// position, never another); and once the churn stops and the channel is
// re-watched, every session has every event. Replication will move
// channels far more often than today's placement does: this is the
// table's contract under it.
func TestWatchTableUnderChurn(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			churn(t, seed)
		})
	}
}

type churnModel struct {
	t     *testing.T
	rng   *rand.Rand
	tab   *watchTable[string]
	owner ownerRef
	up    bool // the owner is alive
	now   time.Time
	log   []uint64 // seqs the channel persisted: 1..len
	// got is each open session's last seq delivered.
	got     map[string]uint64
	pending []rewatchRequest[string] // requests not answered yet
	held    [][]*clusterpb.Event     // event batches delayed in flight
	wake    time.Time
	nextID  int
	replies int
}

func churn(t *testing.T, seed uint64) {
	m := &churnModel{t: t, rng: rand.New(rand.NewPCG(seed, seed*7919+1)), owner: ownerRef{node: "n0", incarnation: 1},
		up: true, now: time.Unix(0, 0), got: map[string]uint64{}}
	m.tab = newWatchTable(func(s string) string { return s }, func(string) (ownerRef, bool) { return m.owner, m.up }, 3)
	for range 3 {
		m.join()
	}
	for range 400 {
		switch r := m.rng.IntN(100); {
		case r < 30:
			m.publish()
		case r < 40:
			m.deliverHeld()
		case r < 62:
			m.answer(true)
		case r < 70:
			m.owner = ownerRef{node: fmt.Sprint("n", m.rng.IntN(4)), incarnation: int64(1 + m.rng.IntN(3))}
			m.up = m.rng.IntN(5) != 0
			m.apply(m.tab.ViewChanged())
		case r < 75:
			m.apply(m.tab.Lost("room"))
		case r < 80:
			m.apply(m.tab.Shed([]string{"room"}, m.rng.IntN(2) == 0))
		case r < 85:
			m.tick()
		case r < 92:
			m.join()
		default:
			m.leave()
		}
	}
	// Calm: everything in flight lands, the channel is re-watched once
	// more (as the next event or a notice would do), and the table
	// settles.
	for len(m.held) > 0 {
		m.deliverHeld()
	}
	m.up = true
	m.apply(m.tab.ViewChanged())
	m.apply(m.tab.Lost("room"))
	for range 1000 {
		if len(m.pending) == 0 && m.wake.IsZero() {
			break
		}
		if len(m.pending) > 0 {
			m.answer(false)
		} else {
			m.tick()
		}
	}
	if len(m.pending) > 0 || !m.wake.IsZero() {
		t.Fatalf("the table never settled: %d requests out, wake %v", len(m.pending), m.wake)
	}
	last := uint64(len(m.log))
	for s, pos := range m.got {
		if pos != last {
			t.Errorf("%s is at seq %d of %d", s, pos, last)
		}
	}
	if len(m.got) > 0 && m.replies == 0 {
		t.Error("no rewatch was ever answered: the scenario tested nothing")
	}
}

// join opens a session that watches from the channel's current seq.
func (m *churnModel) join() {
	m.nextID++
	s := fmt.Sprint("s", m.nextID)
	m.tab.Open(s)
	m.got[s] = uint64(len(m.log))
	m.apply(m.tab.Watched(s, "room", uint64(len(m.log))))
}

// leave ends a random session.
func (m *churnModel) leave() {
	for s := range m.got {
		delete(m.got, s)
		m.apply(m.tab.Close(s))
		return
	}
}

// publish persists 1-3 events and sends them: delivered now, delayed,
// or lost (then maybe reported shed).
func (m *churnModel) publish() {
	var evs []*clusterpb.Event
	for range 1 + m.rng.IntN(3) {
		seq := uint64(len(m.log) + 1)
		m.log = append(m.log, seq)
		evs = append(evs, &clusterpb.Event{Seq: seq, Frame: frame("room", seq)})
	}
	switch r := m.rng.IntN(10); {
	case r < 6:
		m.apply(m.tab.Events("room", evs))
	case r < 8:
		m.held = append(m.held, evs)
	case r < 9:
		m.apply(m.tab.Shed([]string{"room"}, false))
	default: // lost without a word: the next event shows the gap
	}
}

func (m *churnModel) deliverHeld() {
	if len(m.held) == 0 {
		return
	}
	i := m.rng.IntN(len(m.held))
	evs := m.held[i]
	m.held = slices.Delete(m.held, i, i+1)
	m.apply(m.tab.Events("room", evs))
}

// answer replies to a random pending rewatch as the channel would now:
// the events after since (a page of at most 4), its seq. When flaky, it
// may fail unavailable instead.
func (m *churnModel) answer(flaky bool) {
	if len(m.pending) == 0 {
		return
	}
	i := m.rng.IntN(len(m.pending))
	req := m.pending[i]
	m.pending = slices.Delete(m.pending, i, i+1)
	if flaky && m.rng.IntN(4) == 0 {
		m.apply(m.tab.Rewatched(req.Batch, nil, protocol.Errorf(protocol.CodeUnavailable, "moving"), m.now))
		return
	}
	m.replies++
	res := &channel.RewatchResult{Seq: uint64(len(m.log)), Accepted: slices.Clone(req.Sessions)}
	for seq := req.Since + 1; seq <= uint64(len(m.log)); seq++ {
		if len(res.Events) == 4 {
			res.EventsHasMore = true
			break
		}
		res.Events = append(res.Events, json.RawMessage(frame("room", seq)))
	}
	m.apply(m.tab.Rewatched(req.Batch, res, nil, m.now))
}

func (m *churnModel) tick() {
	if m.wake.IsZero() {
		return
	}
	m.now = m.wake
	m.wake = time.Time{}
	m.apply(m.tab.Tick(m.now))
}

// apply checks and records what the table asked for.
func (m *churnModel) apply(fx *watchEffects[string]) {
	for _, d := range fx.Deliver {
		var ev struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(d.frame, &ev); err != nil {
			m.t.Fatal(err)
		}
		pos, open := m.got[d.s]
		switch {
		case !open:
			m.t.Fatalf("seq %d delivered to %s, which has ended", ev.Seq, d.s)
		case ev.Seq != pos+1:
			m.t.Fatalf("%s at seq %d got seq %d", d.s, pos, ev.Seq)
		}
		m.got[d.s] = ev.Seq
	}
	for _, s := range fx.Close {
		m.t.Fatalf("%s closed: nothing here should end a watch", s)
	}
	m.pending = append(m.pending, fx.Rewatch...)
	if !fx.WakeAt.IsZero() && (m.wake.IsZero() || fx.WakeAt.Before(m.wake)) {
		m.wake = fx.WakeAt
	}
}
