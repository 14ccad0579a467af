package cluster

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
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
	if got := p.Nodes(); !slices.Equal(got, []string{"na"}) {
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
	p.Heal()
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

// TestPartitionedGossipShutsDownUnread: the transport shuts down while
// packets keep arriving and nobody reads them (memberlist has stopped
// reading), instead of waiting for ever for its listener, which blocks
// handing a packet over.
func TestPartitionedGossipShutsDownUnread(t *testing.T) {
	mc := memberlist.DefaultLocalConfig()
	mc.BindAddr, mc.BindPort = "127.0.0.1", 0
	mc.Logger = log.New(io.Discard, "", 0)
	tr, err := NewPartition().gossipTransport(mc)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(mc.BindPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	done := make(chan error, 1)
	stop := make(chan struct{})
	go func() { // packets all along, before and during the shutdown
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_, _ = conn.Write([]byte("x"))
			}
		}
	}()
	defer close(stop)
	time.AfterFunc(50*time.Millisecond, func() { done <- tr.Shutdown() })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the transport's shutdown hangs on an unread packet")
	}
}
