package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// clientFrame frames payload as a client does: masked with key.
func clientFrame(fin bool, op byte, payload []byte, key [4]byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

var testKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

func text(s string) []byte { return clientFrame(true, protocol.FrameText, []byte(s), testKey) }

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// readerSession returns a session reading input, whose control frames
// are written to a loopback connection, and that connection's other end.
func readerSession(t *testing.T, limit int, input []byte) (*session, *bufio.Reader) {
	t.Helper()
	h := newWriteHarness(t, func(c *Config) { c.Limits.MaxFrameBytes = limit })
	s, peer := h.session(false)
	s.br = bufio.NewReaderSize(bytes.NewReader(input), readBufBytes)
	return s, bufio.NewReader(peer)
}

// TestReadMessage: messages come whole (fragments joined, control
// frames between them answered); pongs are noted; anything a client may
// not send is refused with a close frame of its code.
func TestReadMessage(t *testing.T) {
	big := strings.Repeat("x", 300)
	huge := strings.Repeat("y", 70000)
	frag := func(fin bool, op byte, s string) []byte { return clientFrame(fin, op, []byte(s), testKey) }
	cat := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	for _, tc := range []struct {
		name  string
		limit int
		in    []byte
		msgs  []string // what readMessage returns, one call each ("" for nil)
		err   string   // the last call's error: "close 1000 bye", "refused 1002", or "eof"
		want  string   // the control frames the peer gets (controlFrames)
	}{
		{name: "text", in: text("hello"), msgs: []string{"hello"}, err: "eof"},
		{name: "binary", in: frag(true, protocol.FrameBinary, "bin"), msgs: []string{"bin"}, err: "eof"},
		{name: "empty", in: text(""), msgs: []string{""}, err: "eof"},
		{name: "16-bit length", in: text(big), msgs: []string{big}, err: "eof"},
		{name: "64-bit length", limit: 1 << 20, in: text(huge), msgs: []string{huge}, err: "eof"},
		{name: "fragments with a ping between", in: cat(frag(false, protocol.FrameText, "hel"), frag(true, protocol.FramePing, "p1"), frag(false, protocol.FrameContinuation, "l"), frag(true, protocol.FrameContinuation, "o")),
			msgs: []string{"hello"}, err: "eof", want: "pong:p1"},
		{name: "a ping alone", in: cat(frag(true, protocol.FramePing, "p2"), text("after")), msgs: []string{"", "after"}, err: "eof", want: "pong:p2"},
		{name: "two messages", in: cat(text("a"), text("b")), msgs: []string{"a", "b"}, err: "eof"},
		{name: "at the limit", limit: 5, in: cat(frag(false, protocol.FrameText, "ab"), frag(true, protocol.FrameContinuation, "cde")), msgs: []string{"abcde"}, err: "eof"},
		{name: "over the limit", limit: 5, in: text("abcdef"), err: "refused 1009", want: "close:1009"},
		{name: "over the limit in fragments", limit: 5, in: cat(frag(false, protocol.FrameText, "abc"), frag(true, protocol.FrameContinuation, "def")), err: "refused 1009", want: "close:1009"},
		{name: "close with a code", in: cat(frag(true, protocol.FrameClose, string(closePayload(1000, "bye"))), text("never")), err: "close 1000 bye", want: "close:1000"},
		{name: "close without a code", in: frag(true, protocol.FrameClose, ""), err: "close 1005 ", want: "close:"},
		{name: "close with an application code", in: frag(true, protocol.FrameClose, string(closePayload(4000, ""))), err: "close 4000 ", want: "close:4000"},
		{name: "one-byte close", in: frag(true, protocol.FrameClose, "x"), err: "refused 1002", want: "close:1002"},
		{name: "close with a reserved code", in: frag(true, protocol.FrameClose, string(closePayload(1005, ""))), err: "refused 1002", want: "close:1002"},
		{name: "close with a broken reason", in: frag(true, protocol.FrameClose, string(closePayload(1000, "\xff"))), err: "refused 1002", want: "close:1002"},
		{name: "unmasked", in: []byte{0x81, 0x01, 'a'}, err: "refused 1002", want: "close:1002"},
		{name: "reserved bit", in: func() []byte { b := text("a"); b[0] |= 0x40; return b }(), err: "refused 1002", want: "close:1002"},
		{name: "unknown data opcode", in: frag(true, 0x3, "a"), err: "refused 1002", want: "close:1002"},
		{name: "unknown control opcode", in: frag(true, 0xb, "a"), err: "refused 1002", want: "close:1002"},
		{name: "fragmented ping", in: frag(false, protocol.FramePing, "a"), err: "refused 1002", want: "close:1002"},
		{name: "long ping", in: frag(true, protocol.FramePing, strings.Repeat("p", 126)), err: "refused 1002", want: "close:1002"},
		{name: "continuation first", in: frag(true, protocol.FrameContinuation, "a"), err: "refused 1002", want: "close:1002"},
		{name: "message inside a message", in: cat(frag(false, protocol.FrameText, "a"), text("b")), err: "refused 1002", want: "close:1002"},
		{name: "cut in the header", in: text("hello")[:3], err: "eof"},
		{name: "cut in the payload", in: text("hello")[:8], err: "eof"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = 64 << 10
			}
			s, peer := readerSession(t, limit, tc.in)
			var err error
			for i := 0; ; i++ {
				var msg []byte
				msg, err = s.readMessage(nil)
				if err != nil {
					if i != len(tc.msgs) {
						t.Fatalf("error %v after %d messages, want %d", err, i, len(tc.msgs))
					}
					break
				}
				if i >= len(tc.msgs) {
					t.Fatalf("message %d %q: want an error", i, msg)
				}
				if want := tc.msgs[i]; string(msg) != want {
					t.Fatalf("message %d: %.40q, want %.40q", i, msg, want)
				}
			}
			var ce *closeError
			var fe *frameError
			got := "eof"
			switch {
			case errors.As(err, &ce):
				got = "close " + strconv.Itoa(int(ce.code)) + " " + ce.reason
			case errors.As(err, &fe):
				got = "refused " + strconv.Itoa(int(fe.code))
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			default:
				t.Fatalf("error %v", err)
			}
			if got != tc.err {
				t.Fatalf("ended with %q (%v), want %q", got, err, tc.err)
			}
			if got := controlFrames(t, s, peer); got != tc.want {
				t.Fatalf("control frames %q, want %q", got, tc.want)
			}
		})
	}
}

// controlFrames closes the session's write side once what it queued is
// written and returns the control frames its peer got: "op:payload", a
// close frame's payload as its code.
func controlFrames(t *testing.T, s *session, peer *bufio.Reader) string {
	t.Helper()
	if s.out.shutdown() {
		s.g.writers.add(s)
	}
	select {
	case <-s.out.waitDead():
	case <-time.After(10 * time.Second):
		t.Fatal("the session's queue was not written")
	}
	var got []string
	for {
		b0, p, err := readServerFrame(peer)
		op := b0 & 0x0f
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				t.Fatalf("reading the peer: %v", err)
			}
			return strings.Join(got, "|")
		}
		switch op {
		case protocol.FramePong:
			got = append(got, "pong:"+string(p))
		case protocol.FrameClose:
			code := ""
			if len(p) >= 2 {
				code = strconv.Itoa(int(binary.BigEndian.Uint16(p)))
			}
			got = append(got, "close:"+code)
		default:
			got = append(got, "op"+strconv.Itoa(int(op))+":"+string(p))
		}
	}
}

// TestPongAnswersThePing: a pong clears the ping waiting for it.
func TestPongAnswersThePing(t *testing.T) {
	s, _ := readerSession(t, 1024, clientFrame(true, protocol.FramePong, nil, testKey))
	s.pingSent.Store(time.Now().UnixNano())
	if msg, err := s.readMessage(nil); msg != nil || err != nil {
		t.Fatalf("readMessage: %q %v", msg, err)
	}
	if s.pingSent.Load() != 0 {
		t.Fatal("the pong did not answer the ping")
	}
}

// FuzzReadMessage: whatever a client sends, reading it ends in a
// message no larger than the limit, a control frame handled, or an error
// — never a panic — and a refused frame queues a close frame.
func FuzzReadMessage(f *testing.F) {
	f.Add(text("hello"))
	f.Add(bytes.Join([][]byte{clientFrame(false, protocol.FrameText, []byte("a"), testKey), clientFrame(true, protocol.FramePing, []byte("p"), testKey), clientFrame(true, protocol.FrameContinuation, []byte("b"), testKey)}, nil))
	f.Add(clientFrame(true, protocol.FrameClose, closePayload(1000, "bye"), testKey))
	f.Add([]byte{0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0x10, 0, 1, 2, 3, 4})
	f.Add([]byte{0x81, 0x01, 'a'})
	const limit = 256
	h := newWriteHarness(f, func(c *Config) { c.Limits.MaxFrameBytes = limit })
	f.Fuzz(func(t *testing.T, in []byte) {
		// Its control frames are written to a sink: no socket per input.
		s := &session{g: h.g, id: randomID(), out: newOutbox(h.g.cfg.QueueFrames, h.g.cfg.QueueBytes)}
		s.wire.init(sinkConn{})
		s.br = bufio.NewReaderSize(bytes.NewReader(in), readBufBytes)
		for range len(in) + 1 {
			msg, err := s.readMessage(nil)
			if len(msg) > limit {
				t.Fatalf("a %d-byte message past the %d limit", len(msg), limit)
			}
			var fe *frameError
			if errors.As(err, &fe) {
				s.out.mu.Lock()
				sent := s.out.closeSent
				s.out.mu.Unlock()
				if !sent {
					t.Fatalf("%v without a close frame", err)
				}
			}
			if err != nil {
				return
			}
		}
		t.Fatal("reading did not end")
	})
}

// sinkConn is a connection that takes every write and has nothing to
// read.
type sinkConn struct{ net.Conn }

func (sinkConn) Write(p []byte) (int, error)      { return len(p), nil }
func (sinkConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (sinkConn) Close() error                     { return nil }
func (sinkConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkReadMessage reads a typical request, a 100-byte masked text
// message, from a connection's buffered reader.
func BenchmarkReadMessage(b *testing.B) {
	frame := text(`{"id":7,"op":"message.send","args":{"channel":"room-1","text":"` + strings.Repeat("x", 34) + `"}}`)
	h := newWriteHarness(b, nil)
	s := &session{g: h.g, id: randomID(), out: newOutbox(h.g.cfg.QueueFrames, h.g.cfg.QueueBytes)}
	in := bytes.NewReader(nil)
	s.br = bufio.NewReaderSize(in, readBufBytes)
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		in.Reset(frame)
		s.br.Reset(in)
		msg, err := s.readMessage(buf)
		if err != nil || len(msg) != 100 {
			b.Fatalf("%d bytes, %v", len(msg), err)
		}
	}
}
