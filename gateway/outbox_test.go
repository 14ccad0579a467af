package gateway

import (
	"maps"
	"testing"
)

// TestOutboxTakesAFrameLargerThanItself: while the queue is below its
// bounds any frame is taken, however large; once it is at them the next
// push closes it as a slow consumer.
func TestOutboxTakesAFrameLargerThanItself(t *testing.T) {
	o := newOutbox(4, 100)
	if why := o.push(make([]byte, 500)); why != "" {
		t.Fatalf("a frame larger than an empty queue: %q", why)
	}
	if why := o.push(make([]byte, 1)); why != dropSlow {
		t.Fatalf("a push to a full queue: %q", why)
	}
	if closed, r := o.state(); !closed || r != reasonSlow {
		t.Fatalf("closed %v %v", closed, r)
	}

	o = newOutbox(4, 100)
	for _, n := range []int{60, 39, 300} { // the last starts below the bound
		if why := o.push(make([]byte, n)); why != "" {
			t.Fatalf("push of %d: %q", n, why)
		}
	}
	frames, closed, _ := o.take(nil)
	if len(frames) != 3 || closed {
		t.Fatalf("took %d frames, closed %v", len(frames), closed)
	}
	// Emptied by the write loop: room again, up to the frame bound.
	for i := range 4 {
		if why := o.push([]byte("x")); why != "" {
			t.Fatalf("push %d: %q", i, why)
		}
	}
	if why := o.push([]byte("x")); why != dropSlow {
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
