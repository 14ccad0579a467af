package cluster

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"
)

// TestPartitionCutsDialsAndConnections: a cut refuses new dials to the
// node's addresses and closes those open, others are untouched, and a
// heal lets dials through again.
func TestPartitionCutsDialsAndConnections(t *testing.T) {
	listen := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		return ln.Addr().String()
	}
	a, b := listen(), listen()
	p := NewPartition()
	ctx := context.Background()
	toA, err := p.DialContext(ctx, "tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	toB, err := p.DialContext(ctx, "tcp", b)
	if err != nil {
		t.Fatal(err)
	}
	p.set("na", []string{a, ""})
	if got := p.nodes(); !slices.Equal(got, []string{"na"}) {
		t.Fatalf("cut nodes %v", got)
	}
	if _, err := p.DialContext(ctx, "tcp", a); !errors.Is(err, errCut) {
		t.Fatalf("dial across the cut: %v", err)
	}
	toA.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := toA.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a cut connection: %v, want it closed", err)
	}
	if _, err := toB.Write([]byte("x")); err != nil {
		t.Fatalf("the other connection: %v", err)
	}
	p.heal()
	if c, err := p.DialContext(ctx, "tcp", a); err != nil {
		t.Fatalf("dial after the heal: %v", err)
	} else {
		c.Close()
	}
	toB.Close()
	if len(p.conns) != 0 {
		t.Fatalf("%d connections still tracked after closing", len(p.conns))
	}
}
