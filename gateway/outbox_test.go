package gateway

import (
	"bytes"
	"maps"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestOutboxTakesAFrameLargerThanItself: while the queue is below its
// bounds any frame is taken, however large; once it is at them the next
// push closes it as a slow consumer.
func TestOutboxTakesAFrameLargerThanItself(t *testing.T) {
	o := newOutbox(4, 100)
	if why, _ := o.push(make([]byte, 500)); why != "" {
		t.Fatalf("a frame larger than an empty queue: %q", why)
	}
	if why, _ := o.push(make([]byte, 1)); why != dropSlow {
		t.Fatalf("a push to a full queue: %q", why)
	}
	if closed, r := o.state(); !closed || r != reasonSlow {
		t.Fatalf("closed %v %v", closed, r)
	}

	o = newOutbox(4, 100)
	for _, n := range []int{60, 39, 300} { // the last starts below the bound
		if why, _ := o.push(make([]byte, n)); why != "" {
			t.Fatalf("push of %d: %q", n, why)
		}
	}
	batch, frames, act := o.take(nil, 1<<20, maxIov)
	if len(batch) != 3 || frames != 3 || act != takeWrite {
		t.Fatalf("took %d frames (%d), %v", len(batch), frames, act)
	}
	// Emptied by a writer: room again, up to the frame bound.
	for i := range 4 {
		if why, _ := o.push([]byte("x")); why != "" {
			t.Fatalf("push %d: %q", i, why)
		}
	}
	if why, _ := o.push([]byte("x")); why != dropSlow {
		t.Fatalf("a fifth frame: %q", why)
	}
}

// TestQueueDropReasons: the push that finds the queue full is a
// slow-consumer drop; frames sent to the closed queue afterwards, or to
// one closed for another reason, are "closed" drops.
func TestQueueDropReasons(t *testing.T) {
	drops := map[string]int{}
	g := &Gateway{cfg: Config{Metrics: &Metrics{QueueDrop: func(r string) { drops[r]++ }}}}
	s := &session{g: g, out: newOutbox(2, 1<<10)}
	for range 5 {
		s.send([]byte("event"))
	}
	if want := map[string]int{"slow_consumer": 1, "closed": 2}; !maps.Equal(drops, want) {
		t.Fatalf("drops %v, want %v", drops, want)
	}

	clear(drops)
	s = &session{g: g, out: newOutbox(2, 1<<10)}
	s.out.close(reasonLogout)
	s.send([]byte("event"))
	if want := map[string]int{"closed": 1}; !maps.Equal(drops, want) {
		t.Fatalf("drops %v, want %v", drops, want)
	}
}

// TestOutboxWakesOnce: the push that finds a session idle hands it to a
// writer; pushes while it is busy do not; a take that finds nothing makes
// it idle again.
func TestOutboxWakesOnce(t *testing.T) {
	o := newOutbox(16, 1<<20)
	if _, wake := o.push([]byte("a")); !wake {
		t.Fatal("the first push did not wake")
	}
	if _, wake := o.push([]byte("b")); wake {
		t.Fatal("a push to a busy session woke it again")
	}
	if o.control(pingMessage) {
		t.Fatal("a control frame woke a busy session")
	}
	batch, frames, act := o.take(nil, 1<<20, maxIov)
	if act != takeWrite || frames != 2 || len(batch) != 3 || !bytes.Equal(batch[0], pingMessage) {
		t.Fatalf("take: %q %d %v", batch, frames, act)
	}
	if _, _, act := o.take(nil, 1<<20, maxIov); act != takeIdle {
		t.Fatalf("an empty take: %v", act)
	}
	if _, wake := o.push([]byte("c")); !wake {
		t.Fatal("a push to an idle session did not wake it")
	}
}

// TestOutboxBoundsOneWrite: a take carries at most maxBytes of data
// (always at least one message) and maxIov messages.
func TestOutboxBoundsOneWrite(t *testing.T) {
	o := newOutbox(64, 1<<20)
	for range 10 {
		o.push(make([]byte, 40))
	}
	if b, n, _ := o.take(nil, 100, maxIov); len(b) != 2 || n != 2 {
		t.Fatalf("took %d messages under 100 bytes", n)
	}
	if b, n, _ := o.take(nil, 10, maxIov); len(b) != 1 || n != 1 {
		t.Fatalf("took %d messages under 10 bytes", n)
	}
	if b, n, _ := o.take(nil, 1<<20, 3); len(b) != 3 || n != 3 {
		t.Fatalf("took %d messages of at most 3", n)
	}
	if b, n, _ := o.take(nil, 1<<20, maxIov); len(b) != 4 || n != 4 {
		t.Fatalf("took the last %d", n)
	}
}

// TestOutboxCloseHandshake: a server-side close writes what is queued,
// then the close frame, then nothing; once the read side is over the
// connection is closed.
func TestOutboxCloseHandshake(t *testing.T) {
	o := newOutbox(16, 1<<20)
	o.push([]byte("reply"))
	o.close(reasonLogout)
	if why, _ := o.push([]byte("late")); why != dropClosed {
		t.Fatalf("a push after close: %q", why)
	}
	if b, _, act := o.take(nil, 1<<20, maxIov); act != takeWrite || string(b[0]) != "reply" {
		t.Fatalf("first take %q %v", b, act)
	}
	b, _, act := o.take(nil, 1<<20, maxIov)
	if act != takeClose || !bytes.Equal(b[0], closeMessage(reasonLogout)) {
		t.Fatalf("second take %q %v", b, act)
	}
	// The client's pings and the read loop's answer to the client's close
	// frame come after the server's close frame: nothing is written.
	o.control(pingMessage)
	o.control(closeMessage(reasonLogout))
	if _, _, act := o.take(nil, 1<<20, maxIov); act != takeIdle {
		t.Fatalf("after the close frame: %v", act)
	}
	dead := o.waitDead()
	if !o.shutdown() {
		t.Fatal("shutdown did not wake the idle session")
	}
	if _, _, act := o.take(nil, 1<<20, maxIov); act != takeShut {
		t.Fatalf("after shutdown: %v", act)
	}
	select {
	case <-dead:
	default:
		t.Fatal("the connection is closed but waitDead's channel is not")
	}
	if o.shutdown() || o.control(pingMessage) {
		t.Fatal("a dead outbox woke")
	}
}

// TestOutboxCloseAfter: a logout's reply and the close are one step:
// what is pushed after them is dropped, and the reply goes out after
// what was queued before it, then the close frame; an outbox closed
// already takes no last message.
func TestOutboxCloseAfter(t *testing.T) {
	if !newOutbox(1, 1<<20).closeAfter([]byte("reply"), reasonLogout) {
		t.Fatal("closeAfter did not wake an idle session")
	}
	o := newOutbox(1, 1<<20)
	o.push([]byte("event")) // woke the session: busy till a take finds nothing
	if o.closeAfter([]byte("reply"), reasonLogout) {
		t.Fatal("closeAfter woke a busy session again")
	}
	if why, _ := o.push([]byte("late event")); why != dropClosed {
		t.Fatalf("a push after closeAfter: %q", why)
	}
	b, frames, act := o.take(nil, 1<<20, maxIov)
	if act != takeWrite || frames != 2 || string(b[0]) != "event" || string(b[1]) != "reply" {
		t.Fatalf("first take %q %v", b, act)
	}
	b, _, act = o.take(nil, 1<<20, maxIov)
	if act != takeClose || !bytes.Equal(b[0], closeMessage(reasonLogout)) {
		t.Fatalf("second take %q %v", b, act)
	}
	if o.closeAfter([]byte("again"), reasonLogout) {
		t.Fatal("a closed outbox took a last message")
	}
	if _, _, act := o.take(nil, 1<<20, maxIov); act != takeIdle {
		t.Fatalf("after the close frame: %v", act)
	}
}

// TestOutboxReaderClose: the read loop's close frame (it answers a
// client's close, or refuses a frame) goes first, and the data queued
// behind it is dropped.
func TestOutboxReaderClose(t *testing.T) {
	o := newOutbox(16, 1<<20)
	o.push([]byte("event"))
	cl := closeMessage(reasonLogout)
	o.control(cl)
	b, frames, act := o.take(nil, 1<<20, maxIov)
	if act != takeWrite || frames != 0 || len(b) != 1 || !bytes.Equal(b[0], cl) {
		t.Fatalf("take %q %d %v", b, frames, act)
	}
	if why, _ := o.push([]byte("late")); why != dropClosed {
		t.Fatalf("a push after the read loop's close frame: %q", why)
	}
	// That close frame is not the server ending the session: the read
	// loop tells why.
	if closed, _ := o.state(); closed {
		t.Fatal("the read loop's close frame closed the outbox")
	}
}

// TestOutboxControlBound: a client that pings without reading gets at
// most maxControl pongs queued; a close frame after them is queued all
// the same.
func TestOutboxControlBound(t *testing.T) {
	o := newOutbox(16, 1<<20)
	pong := frameMessage(protocol.FramePong, []byte("p"))
	for range 3 * maxControl {
		o.control(pong)
	}
	cl := closeMessage(closeReason{protocol.CloseProtocolError, "refused"})
	o.control(cl)
	b, _, _ := o.take(nil, 1<<20, maxIov)
	if len(b) != maxControl+1 || !bytes.Equal(b[maxControl], cl) {
		t.Fatalf("%d control frames queued, want %d pongs and the close frame", len(b), maxControl)
	}
}

// TestOutboxHold: a held outbox hands its session to a writer once as
// many messages as held are queued, or at release, or when a control
// frame or a close comes; never twice.
func TestOutboxHold(t *testing.T) {
	o := newOutbox(8, 1<<20)
	o.hold(2)
	if _, wake := o.push([]byte("a")); wake {
		t.Fatal("the first of two held messages woke a writer")
	}
	if _, wake := o.push([]byte("b")); !wake {
		t.Fatal("the second of two held messages did not wake a writer")
	}
	if o.release() {
		t.Fatal("a release after the hold ended woke a writer")
	}
	if batch, frames, act := o.take(nil, 1<<20, 64); act != takeWrite || frames != 2 || len(batch) != 2 {
		t.Fatalf("take: %d frames, %v", frames, act)
	}

	o = newOutbox(8, 1<<20)
	o.hold(3)
	if o.release() {
		t.Fatal("a release with nothing queued woke a writer")
	}
	o.hold(3)
	o.push([]byte("a"))
	if !o.release() {
		t.Fatal("a release with a message queued did not wake a writer")
	}

	for _, end := range []func(o *outbox) bool{
		func(o *outbox) bool { return o.control(pingMessage) },
		func(o *outbox) bool { return o.close(reasonDrain) },
	} {
		o = newOutbox(8, 1<<20)
		o.hold(5)
		o.push([]byte("a"))
		if !end(o) {
			t.Fatal("a control frame or a close did not end the hold")
		}
		if _, wake := o.push([]byte("b")); wake {
			t.Fatal("a push after the hold ended woke a writer twice")
		}
	}

	o = newOutbox(2, 1<<20) // a hold is bounded by the queue's frames
	o.hold(100)
	o.push([]byte("a"))
	if _, wake := o.push([]byte("b")); !wake {
		t.Fatal("a hold longer than the queue did not end when it filled")
	}
}
