package main

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestRequestsToABrokenNodeFailAtOnce: once the connection to a node
// breaks (here: SIGKILL), requests routed to it fail with unavailable at
// once, long before failure detection (lan: about 5 s) declares it dead —
// not after the transport's two-second reconnect attempt each. The node
// leads the channel's shard, whose two replicas (one per node) are then
// one short of a majority: no other leader can take over until it is
// back.
func TestRequestsToABrokenNodeFailAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	t.Parallel()
	dirs := map[string]string{"n1": t.TempDir(), "n2": t.TempDir()}
	args := func(name string, extra ...string) []string {
		return append([]string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", dirs[name],
			"--node-name", name, "--failure-detection", "lan", "--drain-timeout", "0", "--cluster-name", "brk-" + t.Name()}, extra...)
	}
	a := startProc(t, args("n1")...)
	// n2 comes back at the same addresses (see below).
	remote, gossip := freeAddr(t), freeAddr(t)
	n2 := func() []string {
		return append(args("n2", "--join", a.gossip, "--roles", "host", "--remote-bind", remote), "--cluster-bind", gossip)
	}
	b := startProc(t, n2()...)
	waitFor(t, 20*time.Second, "two alive members", func() bool { return aliveMembers(a.addr) == 2 })
	ch := channelOwnedBy("brk", "n2", "n1", "n2")
	c := rawDialAddr(t, a.addr)
	c.connect("alice")
	c.write(`{"id":2,"op":"channel.create","args":{"id":"` + ch + `","type":"standard"}}`)
	if m := c.reply(); m["result"] == nil {
		t.Fatalf("create on n2: %v", m)
	}
	tc := &testCluster{procs: map[string]*proc{"n1": a}}
	waitFor(t, 30*time.Second, "n2 to lead the channel's shard, both replicas voting", func() bool {
		l, err := tc.locate("n1", ch)
		return err == nil && l.Leader == "n2" && len(l.Replicas) == 2
	})
	b.kill()
	killed := time.Now()
	for i := range 8 {
		start := time.Now()
		c.write(fmt.Sprintf(`{"id":%d,"op":"message.send","args":{"channel":%q,"client_id":"c%d","text":"x"}}`, 10+i, ch, i))
		m := c.reply()
		if errCode(m) != string(protocol.CodeUnavailable) {
			t.Fatalf("send %d to a killed node: %v, want unavailable", i, m)
		}
		t.Logf("send %d failed after %v", i, time.Since(start).Round(time.Millisecond))
	}
	elapsed := time.Since(killed)
	v, err := tc.view("n1")
	if err != nil {
		t.Fatal(err)
	}
	if state, _ := v.member("n2"); state == "dead" {
		t.Errorf("8 sends took %v: n2 was declared dead before they all failed", elapsed)
	}
	// Back at the same transport address, the node is reached again.
	startProc(t, n2()...)
	id := 100
	restarted := time.Now()
	waitFor(t, 30*time.Second, "a send to the restarted node", func() bool {
		id++
		c.write(fmt.Sprintf(`{"id":%d,"op":"message.send","args":{"channel":%q,"client_id":"after","text":"x"}}`, id, ch))
		m := c.reply()
		if m["result"] != nil {
			return true
		}
		if errCode(m) != string(protocol.CodeUnavailable) {
			t.Fatalf("send to the restarted node: %v", m)
		}
		return false
	})
	t.Logf("sends reach the restarted node %v after its start", time.Since(restarted).Round(time.Millisecond))
}

// freeAddr returns a loopback address with a port the OS just had free.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
