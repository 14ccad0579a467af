package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// echoServer listens on loopback and echoes what each connection sends;
// got receives, per connection, everything it read until the end.
func echoServer(t *testing.T) (addr string, got chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var all strings.Builder
				_, _ = io.Copy(io.MultiWriter(c, &all), c)
				got <- all.String()
			}()
		}
	}()
	return ln.Addr().String(), got
}

// roundTrip writes line to c and reads its echo, returning how long that took.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	back, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if back != line+"\n" {
		t.Fatalf("echo %q, want %q", back, line)
	}
	return time.Since(start)
}

// TestLagDelaysBothWaysInOrder: a lagged link delays what the dialler
// sends and what it receives, on connections opened before and after the
// lag began, keeps every byte in order, honours read deadlines, and goes
// on in order after the lag ends.
func TestLagDelaysBothWaysInOrder(t *testing.T) {
	addr, _ := echoServer(t)
	p := NewPartition()
	ctx := context.Background()
	before, err := p.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	rb := bufio.NewReader(before)
	roundTrip(t, before, rb, "direct")

	const delay = 60 * time.Millisecond
	p.setLag("na", []string{addr}, Lag{Delay: delay, Jitter: 20 * time.Millisecond})
	if got := p.Lags(); len(got) != 1 || got[0].Node != "na" || got[0].Delay != delay {
		t.Fatalf("Lags() = %+v", got)
	}
	if rtt := roundTrip(t, before, rb, "lagged"); rtt < 2*delay {
		t.Fatalf("a connection opened before the lag: round trip %s, want at least %s", rtt, 2*delay)
	}
	after, err := p.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	ra := bufio.NewReader(after)
	if rtt := roundTrip(t, after, ra, "lagged too"); rtt < 2*delay {
		t.Fatalf("a connection opened during the lag: round trip %s, want at least %s", rtt, 2*delay)
	}

	// Many writes, each with its own jitter, come back whole and in order.
	const n = 500
	go func() {
		for i := range n {
			if _, err := fmt.Fprintf(after, "%d\n", i); err != nil {
				return
			}
		}
	}()
	for i := range n {
		line, err := ra.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%d\n", i); line != want {
			t.Fatalf("line %d: %q, want %q", i, line, want)
		}
	}

	// A read deadline ends a read that nothing answers, and loses nothing.
	after.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var ne net.Error
	if _, err := ra.ReadString('\n'); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	after.SetReadDeadline(time.Time{})
	ra = bufio.NewReader(after)
	roundTrip(t, after, ra, "after the deadline")

	p.EndLag()
	if got := p.Lags(); len(got) != 0 {
		t.Fatalf("Lags() after EndLag = %+v", got)
	}
	if rtt := roundTrip(t, after, ra, "healed"); rtt >= 2*delay {
		t.Logf("round trip after the lag ended: %s (the machine is slow?)", rtt)
	}
	fresh, err := p.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if fc := fresh.(*faultConn); fc.readLine() != nil {
		t.Fatal("a connection opened after the lag ended has a delay line")
	}
	roundTrip(t, fresh, bufio.NewReader(fresh), "direct again")
}

// TestLaggedCloseSendsWhatIsQueued: a lagged connection closed right
// after a write still delivers the write, then ends (as TCP's close
// does); a cut drops what is queued and ends reads at once.
func TestLaggedCloseSendsWhatIsQueued(t *testing.T) {
	addr, got := echoServer(t)
	p := NewPartition()
	p.setLag("na", []string{addr}, Lag{Delay: 50 * time.Millisecond})
	c, err := p.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("more")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	select {
	case s := <-got:
		if s != "last words" {
			t.Fatalf("the server read %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the closed connection never sent its queued write, or never ended")
	}

	p.setLag("na", []string{addr}, Lag{Delay: maxLag}) // due long after the cut
	c, err = p.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("cut short")); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		read <- err
	}()
	p.set("na", []string{addr})
	select {
	case err := <-read:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a cut connection: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cut did not end the lagged connection's read")
	}
	if s := <-got; s != "" {
		t.Fatalf("the server read %q across a cut made before it was due", s)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) != 0 {
		t.Fatalf("%d connections still tracked", len(p.conns))
	}
}

// TestLaggedGossip: gossip packets to a lagged node arrive late, and
// the loss drops about its share of them.
func TestLaggedGossip(t *testing.T) {
	transport := func(p *Partition) (*partitionedGossip, string) {
		mc := memberlist.DefaultLocalConfig()
		mc.BindAddr, mc.BindPort = "127.0.0.1", 0
		mc.Logger = log.New(io.Discard, "", 0)
		tr, err := p.gossipTransport(mc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Shutdown() })
		return tr, net.JoinHostPort("127.0.0.1", fmt.Sprint(mc.BindPort))
	}
	p := NewPartition()
	from, _ := transport(p)
	to, toAddr := transport(NewPartition())
	const delay, n, loss = 40 * time.Millisecond, 400, 0.5
	p.setLag("nb", []string{toAddr}, Lag{Delay: delay, Loss: loss})
	sent := make(map[string]time.Time, n)
	for i := range n {
		b := fmt.Sprint(i)
		sent[b] = time.Now()
		if _, err := from.WriteTo([]byte(b), toAddr); err != nil {
			t.Fatal(err)
		}
	}
	received := 0
	quiet := time.NewTimer(2 * time.Second) // long after the last due packet
	defer quiet.Stop()
	for done := false; !done; {
		select {
		case pk := <-to.PacketCh():
			if late := pk.Timestamp.Sub(sent[string(pk.Buf)]); late < delay {
				t.Fatalf("packet %s arrived after %s, before its delay", pk.Buf, late)
			}
			received++
		case <-quiet.C:
			done = true
		}
	}
	// Binomial(400, 0.5): 200 ± 10; outside 120–280 is far beyond chance.
	if math.Abs(float64(received)-n*(1-loss)) > 80 {
		t.Fatalf("%d of %d packets arrived at a loss of %v", received, n, loss)
	}
	if held := p.packets.Load(); held != 0 {
		t.Fatalf("%d packets still held", held)
	}
}

// TestLagBounds: a lag out of bounds is refused.
func TestLagBounds(t *testing.T) {
	for _, l := range []Lag{{Delay: -1}, {Delay: maxLag + 1}, {Jitter: -1}, {Loss: 1}, {Loss: -0.1}, {Loss: math.NaN()}} {
		if l.Check() == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	if err := (Lag{Delay: maxLag, Jitter: maxLag, Loss: 0.99}).Check(); err != nil {
		t.Error(err)
	}
}
