package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// opaqueConn hides its connection's socket: the client reads it with Read.
type opaqueConn struct{ net.Conn }

// readModes are the two ways a connection is read: on its socket (a
// plain TCP connection) and with Read (TLS, a custom transport's body).
var readModes = []struct {
	name string
	wrap func(net.Conn) net.Conn
}{
	{"socket", func(c net.Conn) net.Conn { return c }},
	{"Read", func(c net.Conn) net.Conn { return opaqueConn{c} }},
}

// serverFrame is one unmasked frame as a server sends it.
func serverFrame(fin bool, op byte, p []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// clientFrame reads one frame the client wrote: it must be final and
// masked; it returns the opcode, the unmasked payload and the mask.
func clientFrame(t testing.TB, r io.Reader) (byte, []byte, uint32) {
	t.Helper()
	var h [14]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		t.Fatalf("reading the client's frame: %v", err)
	}
	if h[0]&0xF0 != 0x80 || h[1]&0x80 == 0 {
		t.Fatalf("client frame header %x: want final, no reserved bits, masked", h[:2])
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		io.ReadFull(r, h[2:4])
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		io.ReadFull(r, h[2:10])
		n = binary.BigEndian.Uint64(h[2:10])
	}
	var m [4]byte
	if _, err := io.ReadFull(r, m[:]); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatal(err)
	}
	for i := range p {
		p[i] ^= m[i&3]
	}
	return h[0] & 0x0F, p, binary.LittleEndian.Uint32(m[:])
}

// TestReaderMessagesPingsAndClose: whole, fragmented (with a ping
// between the fragments) and long messages arrive whole and in order, in
// pieces of any size; the ping is answered with its payload; the
// server's close (4000, the gateway's slow-consumer cut) is echoed and
// ends the reading with a CloseError that carries its code and reason.
func TestReaderMessagesPingsAndClose(t *testing.T) {
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) {
			cc, sc := tcpPair(t)
			c := newWSConn(m.wrap(cc), m.wrap(cc), nil)
			if (c.raw != nil) != (m.name == "socket") {
				t.Fatalf("raw %v", c.raw != nil)
			}
			long := bytes.Repeat([]byte("L"), 70_000) // a 64-bit length
			mid := bytes.Repeat([]byte("m"), 300)     // a 16-bit length
			want := []string{"one", "frag-mented!", string(mid), string(long), "last"}
			var stream []byte
			stream = append(stream, serverFrame(true, protocol.FrameText, []byte("one"))...)
			stream = append(stream, serverFrame(false, protocol.FrameText, []byte("frag"))...)
			stream = append(stream, serverFrame(true, protocol.FramePing, []byte("are you there"))...)
			stream = append(stream, serverFrame(false, protocol.FrameContinuation, []byte("-"))...)
			stream = append(stream, serverFrame(true, protocol.FrameContinuation, []byte("mented!"))...)
			stream = append(stream, serverFrame(true, protocol.FrameText, mid)...)
			stream = append(stream, serverFrame(true, protocol.FrameBinary, long)...)
			stream = append(stream, serverFrame(true, protocol.FrameText, []byte("last"))...)
			stream = append(stream, serverFrame(true, protocol.FrameClose, closePayload(4000, "slow consumer: outbound queue full"))...)
			go func() { // in uneven pieces, to split headers and payloads
				for i, k := 0, 1; i < len(stream); k = k*3%97 + 1 {
					j := min(i+k, len(stream))
					if _, err := sc.Write(stream[i:j]); err != nil {
						return
					}
					i = j
				}
			}()
			var got []string
			err := c.serve(func(b []byte) { got = append(got, string(b)) })
			var ce CloseError
			if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != "slow consumer: outbound queue full" {
				t.Fatalf("serve ended with %v, want the server's close 4000", err)
			}
			if !strings.Contains(err.Error(), "4000") {
				t.Fatalf("error %q does not say the code", err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d messages, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("message %d: %.40q, want %.40q", i, got[i], want[i])
				}
			}
			op, p, _ := clientFrame(t, sc)
			if op != protocol.FramePong || string(p) != "are you there" {
				t.Fatalf("answer to the ping: op %d %q", op, p)
			}
			op, p, _ = clientFrame(t, sc)
			if op != protocol.FrameClose || binary.BigEndian.Uint16(p) != 4000 {
				t.Fatalf("answer to the close: op %d %x", op, p)
			}
			if _, err := sc.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("the client kept the socket open: %v", err)
			}
		})
	}
}

// TestReaderRefusesBrokenFrames: each violation of the protocol ends the
// reading with ErrProtocol, after a close frame of its code (1002; 1009
// for a message over the read limit).
func TestReaderRefusesBrokenFrames(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 600)
	cases := []struct {
		name   string
		stream []byte
		code   int
	}{
		{"reserved bit", []byte{0xC1, 1, 'x'}, protocol.CloseProtocolError},
		{"masked", []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, protocol.CloseProtocolError},
		{"unknown opcode", serverFrame(true, 0x3, nil), protocol.CloseProtocolError},
		{"unknown control opcode", serverFrame(true, 0xB, nil), protocol.CloseProtocolError},
		{"fragmented ping", serverFrame(false, protocol.FramePing, nil), protocol.CloseProtocolError},
		{"long ping", serverFrame(true, protocol.FramePing, long[:126]), protocol.CloseProtocolError},
		{"continuation first", serverFrame(true, protocol.FrameContinuation, []byte("x")), protocol.CloseProtocolError},
		{"text inside fragments", append(serverFrame(false, protocol.FrameText, []byte("a")), serverFrame(true, protocol.FrameText, []byte("b"))...), protocol.CloseProtocolError},
		{"one-byte close", serverFrame(true, protocol.FrameClose, []byte{3}), protocol.CloseProtocolError},
		{"close 1005 on the wire", serverFrame(true, protocol.FrameClose, closePayload(1005, "")), protocol.CloseProtocolError},
		{"close reason not UTF-8", serverFrame(true, protocol.FrameClose, closePayload(1000, "\xff")), protocol.CloseProtocolError},
		{"over the limit", serverFrame(true, protocol.FrameText, long), protocol.CloseMessageTooBig},
		{"fragments over the limit", append(serverFrame(false, protocol.FrameText, long[:300]), serverFrame(true, protocol.FrameContinuation, long[:300])...), protocol.CloseMessageTooBig},
		{"huge length", []byte{0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, protocol.CloseMessageTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc, sc := tcpPair(t)
			c := newWSConn(cc, cc, nil)
			c.limit = 512
			if _, err := sc.Write(tc.stream); err != nil {
				t.Fatal(err)
			}
			err := c.serve(func([]byte) {})
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("serve ended with %v, want a protocol error", err)
			}
			op, p, _ := clientFrame(t, sc)
			if op != protocol.FrameClose || int(binary.BigEndian.Uint16(p)) != tc.code {
				t.Fatalf("the client closed with op %d %x, want close %d", op, p, tc.code)
			}
		})
	}
}

// TestWritesAreMaskedFrames: each write is one final text frame with a
// fresh mask, long ones included; Ping waits for the server's pong.
func TestWritesAreMaskedFrames(t *testing.T) {
	cc, sc := tcpPair(t)
	c := newWSConn(cc, cc, nil)
	served := make(chan error, 1)
	go func() { served <- c.serve(func([]byte) {}) }()
	ctx := testCtx(t)
	msgs := [][]byte{[]byte("hello"), bytes.Repeat([]byte("a"), 200), bytes.Repeat([]byte("b"), 70_000), {}}
	go func() {
		for _, m := range msgs {
			if err := c.Write(ctx, m); err != nil {
				t.Error(err)
			}
		}
	}()
	masks := map[uint32]bool{}
	for _, m := range msgs {
		op, p, mask := clientFrame(t, sc)
		if op != protocol.FrameText || !bytes.Equal(p, m) {
			t.Fatalf("frame op %d, %d bytes; want text of %d", op, len(p), len(m))
		}
		masks[mask] = true
	}
	if len(masks) < len(msgs)-1 { // two equal masks in four: one in 2^30
		t.Fatalf("masks repeat: %v", masks)
	}

	pinged := make(chan error, 1)
	go func() { pinged <- c.Ping(ctx) }()
	op, p, _ := clientFrame(t, sc)
	if op != protocol.FramePing {
		t.Fatalf("op %d, want a ping", op)
	}
	if _, err := sc.Write(serverFrame(true, protocol.FramePong, p)); err != nil {
		t.Fatal(err)
	}
	if err := <-pinged; err != nil {
		t.Fatalf("ping: %v", err)
	}

	// A write its context ends fails the connection.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Write(cctx, []byte("late")); !errors.Is(err, context.Canceled) {
		t.Fatalf("write with a cancelled context: %v", err)
	}
	c.CloseNow()
	if err := <-served; err == nil {
		t.Fatal("serve ended without an error")
	}
	if err := c.Write(ctx, []byte("after")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// TestCloseWaitsForTheServersAnswer: Close sends its close frame and
// returns once the server's answer ended the reading.
func TestCloseWaitsForTheServersAnswer(t *testing.T) {
	cc, sc := tcpPair(t)
	c := newWSConn(cc, cc, nil)
	served := make(chan error, 1)
	go func() { served <- c.serve(func([]byte) {}) }()
	go func() {
		op, p, _ := clientFrame(t, sc)
		if op == protocol.FrameClose {
			_, _ = sc.Write(serverFrame(true, protocol.FrameClose, p))
		}
	}()
	start := time.Now()
	if err := c.Close(protocol.CloseNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > closeWait/2 {
		t.Fatalf("Close took %s", took)
	}
	var ce CloseError
	if err := <-served; !errors.As(err, &ce) || ce.Code != protocol.CloseNormalClosure {
		t.Fatalf("serve ended with %v", err)
	}
}

// FuzzFrameReader: any bytes, in any pieces, end as messages and control
// frames or as a protocol error: no panic, and neither the read buffer
// nor a message ever outgrows the read limit.
func FuzzFrameReader(f *testing.F) {
	f.Add(serverFrame(true, protocol.FrameText, []byte(`{"event":"message.new"}`)), uint8(3))
	f.Add(append(serverFrame(false, protocol.FrameText, []byte("ab")), serverFrame(true, protocol.FrameContinuation, []byte("cd"))...), uint8(1))
	f.Add(serverFrame(true, protocol.FramePing, []byte("p")), uint8(7))
	f.Add(serverFrame(true, protocol.FrameClose, closePayload(4001, "server draining: reconnect elsewhere")), uint8(2))
	f.Add(serverFrame(true, protocol.FrameText, bytes.Repeat([]byte("z"), 300)), uint8(200))
	f.Add([]byte{0x81, 127, 0, 0, 0, 0, 0, 0, 1, 0}, uint8(5))
	f.Fuzz(func(t *testing.T, stream []byte, piece uint8) {
		const limit = 1000
		c := newWSConn(discardConn{}, nil, nil)
		c.limit = limit
		c.onMsg = func(m []byte) {
			if len(m) > limit {
				t.Fatalf("a message of %d bytes past the limit", len(m))
			}
		}
		step := int(piece)%64 + 1
		for len(stream) > 0 {
			p := c.space()
			if len(c.in) > max(readBufferSize, limit+maxHeader) {
				t.Fatalf("read buffer of %d bytes", len(c.in))
			}
			if len(p) == 0 {
				t.Fatal("no room to read into")
			}
			n := copy(p, stream[:min(step, len(stream))])
			stream = stream[n:]
			c.w += n
			if err := c.parse(); err != nil {
				var ce CloseError
				if !errors.Is(err, ErrProtocol) && !errors.As(err, &ce) {
					t.Fatalf("parse error %v is neither a protocol error nor a close", err)
				}
				return
			}
		}
	})
}

// discardConn takes writes (pongs, closes) and reads nothing.
type discardConn struct{}

func (discardConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (discardConn) Close() error                { return nil }
