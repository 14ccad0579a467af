package gateway

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestWatchTable runs the scripted scenarios of testdata/watchtable: each
// line is an input to the table, and below it the effects it returned
// (go test -run TestWatchTable -rewrite regenerates them after a
// deliberate change; read the diff). Commands:
//
//	new batch=N attempts=M      a fresh table: rewatches of N sessions each, M retries
//	owner room=n1 [room2=n2:3]  channel room is owned by node n1 (in life 1; n2 in life 3)
//	down n1 / up n1             node n1 dies / comes back (owners still point at it)
//	open s1 s2 / close s1       sessions start / end
//	watch s1 room seq=3         s1's join or watch of room answered with seq 3
//	unwatch s1 room             s1's unwatch of room answered
//	events room seqs=(4,5,0)    room sends events 4 and 5 and one without seq (typing)
//	removed room s1             room removed s1 itself (a kick)
//	lost room / shed room / shed all / view
//	reply 1 accepted=(s1) refused=(s2) seq=7 events=(5,6,7) [more] [reset]
//	fail 1 unavailable          rewatch request 1 failed with that code
//	tick at=150ms               the retry timer fired at 150 ms
//	state                       the table: channels, owners, positions, rewatches
//
// Any input may carry at=D: the time (since the scenario's start) it
// happens at. Effects print as: "s1 <- message.new room#4" (a frame
// queued), "close s1" (closed to resync), "drop s1 at room" (room told s1
// does not watch it), "rewatch #1 room since=3 [s1 s2] attempt=0" (a
// request sent), "wake at 150ms" (the retry timer armed).
func TestWatchTable(t *testing.T) {
	datadriven.Walk(t, "testdata/watchtable", func(t *testing.T, path string) {
		r := newTableRig(channel.MaxRewatchSessions)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return r.run(t, d)
		})
	})
}

type tableRig struct {
	t       *watchTable[string]
	owners  map[string]ownerRef
	down    map[string]bool
	returns map[string]int // a node's returns from down (up after down)
	start   time.Time
	now     time.Time
}

func newTableRig(batch int) *tableRig {
	r := &tableRig{owners: map[string]ownerRef{}, down: map[string]bool{}, returns: map[string]int{}, start: time.Unix(1_000_000, 0)}
	r.now = r.start
	r.t = newWatchTable(func(s string) string { return s }, func(ch string) (ownerRef, bool) {
		o := r.owners[ch]
		o.returns = r.returns[o.node]
		return o, o.node != "" && !r.down[o.node]
	}, batch)
	return r
}

// positional returns the arguments given without a value, in order.
func positional(d *datadriven.TestData) []string {
	var out []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 && a.Key != "more" && a.Key != "reset" && a.Key != "all" {
			out = append(out, a.Key)
		}
	}
	return out
}

func vals(d *datadriven.TestData, key string) []string {
	a, _ := d.Arg(key)
	return a.Vals
}

func seqs(t *testing.T, ss []string) []uint64 {
	out := make([]uint64, len(ss))
	for i, s := range ss {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("seq %q: %v", s, err)
		}
		out[i] = n
	}
	return out
}

// frame is an event of ch: message.new with a seq, typing without.
func frame(ch string, seq uint64) []byte {
	name := protocol.EventMessageNew
	if seq == 0 {
		name = protocol.EventTyping
	}
	f, _ := protocol.EncodeEvent(name, ch, seq, map[string]any{})
	return f
}

func (r *tableRig) run(t *testing.T, d *datadriven.TestData) string {
	if a, ok := d.Arg("at"); ok {
		at, err := time.ParseDuration(a.SingleVal(t))
		if err != nil {
			t.Fatalf("%s: at: %v", d.Pos, err)
		}
		r.now = r.start.Add(at)
	}
	pos := positional(d)
	var fx *watchEffects[string]
	switch d.Cmd {
	case "new":
		batch, attempts := channel.MaxRewatchSessions, maxRewatchAttempts
		d.MaybeScanArgs(t, "batch", &batch)
		d.MaybeScanArgs(t, "attempts", &attempts)
		*r = *newTableRig(batch)
		r.t.attempts = attempts
		return "ok"
	case "owner":
		for _, a := range d.CmdArgs {
			// node[:life[:term]]
			parts := strings.Split(a.SingleVal(t), ":")
			ref := ownerRef{node: parts[0], incarnation: 1}
			if len(parts) > 1 {
				ref.incarnation, _ = strconv.ParseInt(parts[1], 10, 64)
			}
			if len(parts) > 2 {
				ref.term, _ = strconv.ParseUint(parts[2], 10, 64)
			}
			r.owners[a.Key] = ref
		}
		return "ok"
	case "down", "up":
		// A node up after down is back from dead: a return in the same
		// life (cluster.Member.Returns).
		for _, n := range pos {
			if d.Cmd == "up" && r.down[n] {
				r.returns[n]++
			}
			r.down[n] = d.Cmd == "down"
		}
		return "ok"
	case "open":
		for _, s := range pos {
			r.t.Open(s)
		}
		return "ok"
	case "close":
		fx = r.t.Close(pos[0])
	case "watch":
		var seq uint64
		d.ScanArgs(t, "seq", &seq)
		fx = r.t.Watched(pos[0], pos[1], seq)
	case "unwatch":
		r.t.Unwatched(pos[0], pos[1])
		return "ok"
	case "events":
		var evs []*clusterpb.Event
		for _, s := range seqs(t, vals(d, "seqs")) {
			evs = append(evs, &clusterpb.Event{Seq: s, Frame: frame(pos[0], s)})
		}
		fx = r.t.Events(pos[0], evs)
	case "removed":
		r.t.Removed(pos[0], pos[1:])
		return "ok"
	case "lost":
		fx = r.t.Lost(pos[0])
	case "lostnode":
		fx = r.t.LostNode(pos[0])
	case "shed":
		fx = r.t.Shed(pos, d.HasArg("all"))
	case "view":
		fx = r.t.ViewChanged()
	case "reply":
		fx = r.reply(t, d, pos)
	case "fail":
		id, _ := strconv.ParseUint(pos[0], 10, 64)
		fx = r.t.Rewatched(id, nil, protocol.Errorf(protocol.Code(pos[1]), "%s", pos[1]), r.now)
	case "tick":
		fx = r.t.Tick(r.now)
	case "state":
		return r.state()
	default:
		t.Fatalf("%s: unknown command %s", d.Pos, d.Cmd)
	}
	return r.effects(t, fx)
}

// reply builds a rewatch result: accepted and refused sessions, the
// channel's seq, the replayed events.
func (r *tableRig) reply(t *testing.T, d *datadriven.TestData, pos []string) *watchEffects[string] {
	id, _ := strconv.ParseUint(pos[0], 10, 64)
	b := r.t.batches[id]
	if b == nil {
		t.Fatalf("%s: no rewatch #%d in flight", d.Pos, id)
	}
	res := &channel.RewatchResult{Accepted: vals(d, "accepted"), EventsHasMore: d.HasArg("more"), Reset: d.HasArg("reset")}
	for _, s := range vals(d, "refused") {
		res.Refused = append(res.Refused, channel.RefusedSession{Session: s, Error: protocol.Errorf(protocol.CodeBanned, "banned")})
	}
	d.MaybeScanArgs(t, "seq", &res.Seq)
	for _, s := range seqs(t, vals(d, "events")) {
		res.Events = append(res.Events, frame(b.ch, s))
	}
	// Through JSON, as the reply travels.
	raw, _ := json.Marshal(res)
	var got channel.RewatchResult
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	return r.t.Rewatched(id, &got, nil, r.now)
}

func (r *tableRig) effects(t *testing.T, fx *watchEffects[string]) string {
	var b strings.Builder
	for _, dl := range fx.Deliver {
		var ev struct {
			Event   string `json:"event"`
			Channel string `json:"channel"`
			Seq     uint64 `json:"seq"`
			Data    struct {
				Error *protocol.Error `json:"error"`
			} `json:"data"`
		}
		if err := json.Unmarshal(dl.frame, &ev); err != nil {
			t.Fatalf("frame %s: %v", dl.frame, err)
		}
		fmt.Fprintf(&b, "%s <- %s %s", dl.s, ev.Event, ev.Channel)
		switch {
		case ev.Seq != 0:
			fmt.Fprintf(&b, "#%d", ev.Seq)
		case ev.Data.Error != nil:
			fmt.Fprintf(&b, ": %s", ev.Data.Error.Code)
		}
		b.WriteByte('\n')
	}
	for _, s := range fx.Close {
		fmt.Fprintf(&b, "close %s\n", s)
	}
	for _, dw := range fx.Drop {
		fmt.Fprintf(&b, "drop %s at %s\n", dw.s, dw.ch)
	}
	for _, rw := range fx.Rewatch {
		fmt.Fprintf(&b, "rewatch #%d %s since=%d [%s] attempt=%d\n", rw.Batch, rw.Channel, rw.Since, strings.Join(rw.Sessions, " "), rw.Attempt)
	}
	if !fx.WakeAt.IsZero() {
		fmt.Fprintf(&b, "wake at %v\n", fx.WakeAt.Sub(r.start))
	}
	if b.Len() == 0 {
		return "ok"
	}
	return b.String()
}

// state prints every channel: its owner, its watchers at their
// positions, and its rewatch state; then the sessions open.
func (r *tableRig) state() string {
	var b strings.Builder
	for _, ch := range sortedKeys(r.t.channels) {
		c := r.t.channels[ch]
		fmt.Fprintf(&b, "%s:", ch)
		if c.ownerKnown {
			fmt.Fprintf(&b, " owner=%s:%d", c.owner.node, c.owner.incarnation)
			if c.owner.term != 0 {
				fmt.Fprintf(&b, ":%d", c.owner.term)
			}
		}
		if c.pending > 0 {
			fmt.Fprintf(&b, " pending=%d", c.pending)
		}
		if c.again {
			b.WriteString(" again")
		}
		if !c.retryAt.IsZero() {
			fmt.Fprintf(&b, " retry=%v/attempt %d", c.retryAt.Sub(r.start), c.retryAttempt)
		}
		ws := slices.Clone(c.watchers)
		slices.SortFunc(ws, func(a, b watcher[string]) int { return strings.Compare(a.s, b.s) })
		for _, w := range ws {
			fmt.Fprintf(&b, " %s@%d", w.s, w.pos)
		}
		b.WriteByte('\n')
	}
	open := sortedKeys(r.t.sessions)
	fmt.Fprintf(&b, "open: %s\n", strings.Join(open, " "))
	return b.String()
}
