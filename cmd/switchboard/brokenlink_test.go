package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
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

// freeAddr returns a loopback address whose port is free for TCP and UDP
// (gossip binds both) and lies below the kernel's ephemeral range. A port
// the OS hands out for :0 is in that range, where an outgoing connection
// of another test may be given it as its local port and hold it for as
// long as it lives: a node started on it later then cannot bind it.
func freeAddr(t *testing.T) string {
	t.Helper()
	low := ephemeralLow()
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(low-10000))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux;
// elsewhere IANA's, 49152, or Linux's default, whichever is lower).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); err == nil && len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
			return n
		}
	}
	return 32768
}
