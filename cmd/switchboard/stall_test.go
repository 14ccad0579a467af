package main

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestClientsLeaveAPausedGateway: the gateway that senders and a watcher
// are connected to is paused (SIGSTOP): their TCP connections stay open
// and say nothing. Each client notices the silence within its
// StallTimeout, reconnects to its next URL and goes on: the senders'
// sends (outstanding ones resent with their client_id) are acknowledged
// there while the first gateway is still paused, and the watcher resumes
// its watch. Every acknowledged message is stored exactly once, in
// order, and delivered to the watcher exactly once.
func TestClientsLeaveAPausedGateway(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx := ctxT(t)
	// The channel's leader is not the paused node: what is measured is
	// the clients' failover, not an election.
	ch := channelOwnedBy("stalled", "n2", "n1", "n2", "n3")
	admin := adminClient(t, c.urls("n2", "n3"))
	if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	// ping is the gateway's own answer, whatever the channels do.
	var pong json.RawMessage
	if err := admin.Call(ctx, protocol.OpPing, protocol.Empty{}, &pong); err != nil || string(pong) != "{}" {
		t.Fatalf("ping: %s %v", pong, err)
	}
	const stall = time.Second
	fast := func(o *client.Options) { o.StallTimeout = stall }
	urls := c.urls("n1", "n2") // connected to n1; n2 next
	w := startWatcher(t, urls, []string{ch}, fast)
	tr := startTraffic(t, urls, []string{ch}, 2, fast)
	tr.waitMore(t, 40, 30*time.Second)

	n1 := c.procs["n1"]
	n1.pause()
	t.Cleanup(func() {
		if n1.cmd.ProcessState == nil {
			_ = n1.cmd.Process.Signal(syscall.SIGCONT) // never leave a stopped process behind
		}
	})
	sessions := make([]string, len(tr.clients))
	for i, cl := range tr.clients {
		sessions[i] = cl.Session().SessionID
	}
	paused := time.Now()
	// Each sender is dropped after 1–1¼ × stall of silence and reconnects
	// to n2 at once; the deadline leaves room for a loaded machine, and
	// is well short of the 15 s a request would wait without the check.
	waitFor(t, 4*stall+2*time.Second, "every sender to reconnect", func() bool {
		for i, cl := range tr.clients {
			if cl.Session().SessionID == sessions[i] {
				return false
			}
		}
		return true
	})
	t.Logf("senders reconnected %s after the pause (StallTimeout %s)", time.Since(paused).Round(time.Millisecond), stall)
	tr.waitMore(t, 40, 10*time.Second) // acknowledged by n2 while n1 is still paused

	n1.resume()
	tr.waitMore(t, 20, 30*time.Second)
	tr.stop()
	tr.verify(t, admin)
	w.verify(t, tr)
}
