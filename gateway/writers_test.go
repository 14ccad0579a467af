package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// writeHarness is a gateway with a writer pool and nothing else, whose
// sessions write to real loopback TCP connections.
type writeHarness struct {
	t       testing.TB
	g       *Gateway
	mu      sync.Mutex
	reasons map[string]int
}

func newWriteHarness(t testing.TB, mutate func(*Config)) *writeHarness {
	h := &writeHarness{t: t, reasons: map[string]int{}}
	cfg := Config{Writers: 1, Metrics: &Metrics{Disconnect: func(r string) {
		h.mu.Lock()
		h.reasons[r]++
		h.mu.Unlock()
	}}}
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.withDefaults()
	h.g = &Gateway{cfg: cfg}
	h.g.writers = newWriterPool(h.g, cfg.Writers)
	t.Cleanup(h.g.writers.stop)
	return h
}

func (h *writeHarness) reason(r string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reasons[r]
}

// session returns a session writing to one end of a loopback connection,
// and the other end, to read from. With small buffers the socket is full
// after a few kilobytes.
func (h *writeHarness) session(small bool) (*session, net.Conn) {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	defer ln.Close()
	var d net.Dialer
	if small {
		// The receive buffer is set before the connection is made: set
		// later, the window scale chosen for a large one makes the
		// window close for good (zero-window probes back off to
		// minutes).
		d.Control = smallReceiveBuffer
	}
	peer, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		h.t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		h.t.Fatal(err)
	}
	if small {
		_ = conn.(*net.TCPConn).SetWriteBuffer(4096)
	}
	h.t.Cleanup(func() { conn.Close(); peer.Close() })
	s := &session{g: h.g, id: randomID(), out: newOutbox(h.g.cfg.QueueFrames, h.g.cfg.QueueBytes)}
	s.wire.init(conn)
	return s, peer
}

// readMessages reads n text messages from a session's peer.
func readMessages(r *bufio.Reader, n int) ([]string, error) {
	var out []string
	for range n {
		b0, p, err := readServerFrame(r)
		if err != nil {
			return out, err
		}
		if b0 != 0x80|protocol.FrameText {
			return out, fmt.Errorf("frame %x", b0)
		}
		out = append(out, string(p))
	}
	return out, nil
}

// readServerFrame reads one frame the server wrote (unmasked): its first
// header byte (FIN and opcode) and its payload.
func readServerFrame(r *bufio.Reader) (b0 byte, payload []byte, err error) {
	hdr, err := r.Peek(2)
	if err != nil {
		return 0, nil, err
	}
	if hdr, err = r.Peek(protocol.FrameHeaderLen(hdr[1])); err != nil {
		return 0, nil, err
	}
	b0, n := hdr[0], protocol.FramePayloadLen(hdr)
	_, _ = r.Discard(len(hdr))
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return b0, payload, err
}

// TestFullSocketHoldsUpNoOtherSession: with a single writer, a session
// whose client stopped reading (its socket is full) does not delay
// another: its write is finished on its own goroutine. When its client
// reads again it gets every message, once, in order — the write the
// socket took part of went on from where it stopped.
func TestFullSocketHoldsUpNoOtherSession(t *testing.T) {
	h := newWriteHarness(t, func(c *Config) { c.QueueFrames, c.QueueBytes = 1<<16, 64<<20 })
	slow, slowPeer := h.session(true)
	fast, fastPeer := h.session(false)
	const n = 400
	pad := make([]byte, 3000)
	for i := range n {
		slow.sendMessage(frameMessage(protocol.FrameText, append([]byte(strconv.Itoa(i)+" "), pad...)))
	}
	// 1.2 MB queued on a socket that holds a few kilobytes: the writer
	// has handed it to its own goroutine and moved on.
	done := make(chan error, 1)
	go func() {
		got, err := readMessages(bufio.NewReader(fastPeer), n)
		for i := 0; err == nil && i < n; i++ {
			if got[i] != strconv.Itoa(i) {
				err = fmt.Errorf("message %d is %q", i, got[i])
			}
		}
		done <- err
	}()
	for i := range n {
		fast.sendMessage(frameMessage(protocol.FrameText, []byte(strconv.Itoa(i))))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reading session did not get its messages while another's socket was full")
	}
	_ = slowPeer.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := readMessages(bufio.NewReader(slowPeer), n)
	if err != nil {
		t.Fatalf("after %d messages: %v", len(got), err)
	}
	for i, m := range got {
		if len(m) != len(pad)+len(strconv.Itoa(i))+1 || m[:len(strconv.Itoa(i))+1] != strconv.Itoa(i)+" " {
			t.Fatalf("message %d is %.20q… (%d bytes)", i, m, len(m))
		}
	}
}

// TestWriteTimeoutEndsTheSession: a client that does not read within
// WriteTimeout is cut off; it counts as a failed write (or as a slow
// consumer when its queue overflowed meanwhile).
func TestWriteTimeoutEndsTheSession(t *testing.T) {
	h := newWriteHarness(t, func(c *Config) { c.WriteTimeout = 200 * time.Millisecond })
	s, peer := h.session(true)
	pad := make([]byte, 64<<10)
	for range 16 {
		s.sendMessage(frameMessage(protocol.FrameText, pad))
	}
	// The peer reads nothing until the server has given up on it.
	waitFor(t, 20*time.Second, "cut-off of a client that does not read", func() bool { return h.reason("write_failed") > 0 })
	// Then it reads what its socket held, and the end of the connection.
	_ = peer.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, peer)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection was not closed")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.reasons) != 1 {
		t.Fatalf("disconnect reasons %v, want one write_failed", h.reasons)
	}
	if why, _ := s.out.push([]byte("late")); why != dropClosed {
		t.Fatalf("a push after the connection died: %q", why)
	}
}

func TestRemainder(t *testing.T) {
	bufs := [][]byte{[]byte("abc"), []byte("de"), []byte("fgh")}
	for n, want := range []string{"abc|de|fgh", "bc|de|fgh", "c|de|fgh", "de|fgh", "e|fgh", "fgh", "gh", "h", ""} {
		got := ""
		for i, b := range remainder(bufs, n) {
			if i > 0 {
				got += "|"
			}
			got += string(b)
		}
		if got != want {
			t.Fatalf("remainder after %d bytes: %q, want %q", n, got, want)
		}
	}
	if string(bufs[0]) != "abc" {
		t.Fatal("remainder changed its argument")
	}
}

// frameLen returns the length of the whole frame at the start of b, or 0
// when b does not hold a whole frame header yet (server frames: unmasked).
func frameLen(b []byte) int {
	if len(b) < 2 || len(b) < protocol.FrameHeaderLen(b[1]) {
		return 0
	}
	return protocol.FrameHeaderLen(b[1]) + int(protocol.FramePayloadLen(b))
}

// TestFrameHeaders: every length is framed as RFC 6455 says, and
// frameLen reads it back.
func TestFrameHeaders(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		m := frameMessage(protocol.FrameText, make([]byte, n))
		if frameLen(m) != len(m) || frameLen(m[:1]) != 0 {
			t.Fatalf("length %d: frameLen %d of %d", n, frameLen(m), len(m))
		}
		b := newFrameBuf(n)
		b = append(b, make([]byte, n)...)
		if in := frameInPlace(b); string(in) != string(m) {
			t.Fatalf("length %d: framed in place differs", n)
		}
		got, err := readMessages(bufio.NewReader(bytes.NewReader(m)), 1)
		if err != nil || len(got[0]) != n {
			t.Fatalf("length %d: read back %d, %v", n, len(got), err)
		}
	}
	c := closeMessage(closeReason{CloseSlowConsumer, string(make([]byte, 300))})
	if len(c) != 2+125 || c[0] != 0x80|protocol.FrameClose || binary.BigEndian.Uint16(c[2:]) != uint16(CloseSlowConsumer) {
		t.Fatalf("close frame %x…", c[:4])
	}
}

// TestReplyNowIsWrittenByItsCaller: connect's reply is written by the
// goroutine that sends it when the session has nothing queued (a pool
// without workers still delivers it), and waits its turn behind what is
// queued otherwise.
func TestReplyNowIsWrittenByItsCaller(t *testing.T) {
	h := newWriteHarness(t, nil)
	p := newWriterPool(h.g, 0) // no workers: only writeNow writes
	h.g.writers = p
	s, peer := h.session(false)
	r := bufio.NewReader(peer)
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))

	s.replyResultNow([]byte("1"), []byte(`{"ok":true}`))
	got, err := readMessages(r, 1)
	if err != nil || got[0] != `{"id":1,"result":{"ok":true}}` {
		t.Fatalf("got %q, %v", got, err)
	}

	s.sendMessage(frameMessage(protocol.FrameText, []byte("queued first")))
	s.replyResultNow([]byte("2"), []byte(`{}`)) // the outbox is busy: queued behind
	p.mu.Lock()
	p.workers = 1
	p.mu.Unlock()
	p.wg.Go(p.work)
	t.Cleanup(p.stop)
	got, err = readMessages(r, 2)
	if err != nil || got[0] != "queued first" || got[1] != `{"id":2,"result":{}}` {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestReplyGoesAheadOfAFanOut: a session waiting among a fan-out's (in
// the ring, or in a live channel's held window) with a reply queued is
// taken first; the others keep their order; each session's own frames go
// out in the order queued; and no session is ever taken twice.
func TestReplyGoesAheadOfAFanOut(t *testing.T) {
	h := newWriteHarness(t, nil)
	p := newWriterPool(h.g, 0) // no workers: the test takes from the queue itself
	p.workers = 1              // as next shares the queue out
	h.g.writers = p
	ss := make([]*session, 6)
	peers := make([]*bufio.Reader, len(ss))
	for i := range ss {
		s, peer := h.session(false)
		_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		ss[i], peers[i] = s, bufio.NewReader(peer)
	}
	event := frameMessage(protocol.FrameText, []byte("event"))
	var wake []*session
	for _, s := range ss {
		if s.queue(event) {
			wake = append(wake, s)
		}
	}
	p.addAll(wake[:4])                           // a fan-out: 0..3 in the ring
	p.addAt(wake[4:], time.Now().Add(time.Hour)) // 4, 5 held (a coalescing window)
	ss[2].replyResult([]byte("7"), []byte(`{}`))
	ss[5].replyResult([]byte("8"), []byte(`{}`))
	ss[3].replyResult([]byte("9"), []byte(`{}`))
	ss[2].replyResult([]byte("10"), []byte(`{}`)) // already urgent: stays where it is

	took := p.next(make([]*session, 0, 32))
	want := []*session{ss[2], ss[5], ss[3], ss[0], ss[1]}
	if len(took) != len(want) {
		t.Fatalf("took %d sessions, want %d", len(took), len(want))
	}
	for i := range want {
		if took[i] != want[i] {
			t.Fatalf("take %d: session %d, want %d", i, slices.Index(ss, took[i]), slices.Index(ss, want[i]))
		}
	}
	p.mu.Lock()
	n, urgent, held := p.n, len(p.urgent), p.held[0].sessions
	p.mu.Unlock()
	if n != 0 || urgent != 0 || held[0] != ss[4] || held[1] != nil {
		t.Fatalf("left: ring %d, urgent %d, held %v", n, urgent, held)
	}

	w := &worker{p: p}
	for _, s := range took {
		w.serve(s)
	}
	for i, want := range map[int][]string{0: {"event"}, 2: {"event", `{"id":7,"result":{}}`, `{"id":10,"result":{}}`}, 3: {"event", `{"id":9,"result":{}}`}, 5: {"event", `{"id":8,"result":{}}`}} {
		got, err := readMessages(peers[i], len(want))
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("session %d got %q, %v; want %q", i, got, err, want)
		}
	}
}

// TestRepliesAndFanOutsUnderLoad: fan-outs, replies and workers at once
// (run with -race): every session receives everything queued for it,
// once, in order.
func TestRepliesAndFanOutsUnderLoad(t *testing.T) {
	h := newWriteHarness(t, func(c *Config) { c.Writers = 1 })
	// More sessions than a worker takes in a turn (32), so that promoted
	// sessions' empty places are left behind in the ring.
	const sessions, rounds = 50, 200
	ss := make([]*session, sessions)
	peers := make([]*bufio.Reader, sessions)
	for i := range ss {
		s, peer := h.session(false)
		_ = peer.SetReadDeadline(time.Now().Add(20 * time.Second))
		ss[i], peers[i] = s, bufio.NewReader(peer)
	}
	// One goroutine fans events out (one frame for all, the hub's way)
	// while another replies to each session in turn; a session's frames
	// come from both, so each session's order is checked per source.
	var wg sync.WaitGroup
	wg.Go(func() {
		wake := make([]*session, 0, sessions)
		for r := range rounds {
			msg := frameMessage(protocol.FrameText, []byte("e"+strconv.Itoa(r)))
			for _, s := range ss {
				if s.queue(msg) {
					wake = append(wake, s)
				}
			}
			if r%3 == 0 {
				h.g.writers.addAt(wake, time.Now().Add(time.Millisecond))
			} else {
				h.g.writers.addAll(wake)
			}
			wake = wake[:0]
		}
	})
	wg.Go(func() {
		for r := range rounds {
			for _, s := range ss {
				s.replyResult([]byte(strconv.Itoa(r)), []byte(`{}`))
			}
		}
	})
	wg.Wait()
	for i, r := range peers {
		got, err := readMessages(r, 2*rounds)
		if err != nil {
			t.Fatalf("session %d: %v after %d messages", i, err, len(got))
		}
		events, replies := 0, 0
		for _, m := range got {
			if strings.HasPrefix(m, "e") {
				if m != "e"+strconv.Itoa(events) {
					t.Fatalf("session %d: event %q, want e%d", i, m, events)
				}
				events++
				continue
			}
			if want := `{"id":` + strconv.Itoa(replies) + `,"result":{}}`; m != want {
				t.Fatalf("session %d: reply %q, want %q", i, m, want)
			}
			replies++
		}
	}
}

// TestPromotedPlacesAreSkipped: a turn that finds only the empty places
// promoted sessions left in the ring waits for the next session instead
// of returning none (which a worker takes for the pool's end).
func TestPromotedPlacesAreSkipped(t *testing.T) {
	h := newWriteHarness(t, nil)
	p := newWriterPool(h.g, 0)
	p.workers = 1
	h.g.writers = p
	a, _ := h.session(false)
	b, _ := h.session(false)
	if a.queue(frameMessage(protocol.FrameText, []byte("event"))) {
		p.addAll([]*session{a})
	}
	a.replyResult([]byte("1"), []byte(`{}`)) // a: urgent; its ring place empty
	if got := p.next(make([]*session, 0, 1)); len(got) != 1 || got[0] != a {
		t.Fatalf("first turn took %v", got)
	}
	got := make(chan []*session, 1)
	go func() { got <- p.next(make([]*session, 0, 1)) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case ss := <-got:
			t.Fatalf("a turn over an empty place returned %d sessions instead of waiting", len(ss))
		default:
		}
		p.mu.Lock()
		waiting := p.waiting
		p.mu.Unlock()
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the turn neither returned nor waited")
		}
		runtime.Gosched()
	}
	if b.queue(frameMessage(protocol.FrameText, []byte("event"))) {
		p.add(b)
	}
	if ss := <-got; len(ss) != 1 || ss[0] != b {
		t.Fatalf("the turn took %v, want b", ss)
	}
}
