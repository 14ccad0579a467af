package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"github.com/hashicorp/memberlist"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// silentHost runs a bare memberlist member named name that gossips host
// metadata whose actor address accepts connections and never answers: a
// host that stays alive in membership while requests to it hang.
// stop closes it.
func silentHost(t *testing.T, name, clusterName string) (gossip, remote string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // never accepts: the handshake hangs
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(cluster.Meta{Roles: []cluster.Role{cluster.RoleHost}, Remote: ln.Addr().String(),
		Version: cluster.ProtocolVersion, Incarnation: 1})
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.Label, mc.LogOutput = name, clusterName, io.Discard
	mc.BindAddr, mc.AdvertiseAddr, mc.BindPort = "127.0.0.1", "127.0.0.1", 0
	mc.Delegate = metaDelegate(meta)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	stop = func() {
		ln.Close()
		_ = ml.Shutdown()
	}
	t.Cleanup(stop)
	n := ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), ln.Addr().String(), stop
}

type metaDelegate []byte

func (d metaDelegate) NodeMeta(int) []byte             { return d }
func (d metaDelegate) NotifyMsg([]byte)                {}
func (d metaDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d metaDelegate) LocalState(bool) []byte          { return nil }
func (d metaDelegate) MergeRemoteState([]byte, bool)   {}

// inOwnProcess runs the calling test alone in a new process of the test
// binary and reports whether this is that process (the caller then runs
// the test's body; otherwise the test is done). For tests whose node opens
// a gRPC client connection: protoactor-go's transport sets gRPC's global
// logger whenever a node starts, which the race detector reports against
// that connection's logging if another test's node starts in the process.
func inOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv("SWITCHBOARD_OWN_PROCESS") == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SWITCHBOARD_OWN_PROCESS="+t.Name())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s in its own process: %v\n%s", t.Name(), err, out)
	}
	return false
}

// TestDrainWaitsForLocatesInFlight: a scope being located here when the
// drain starts may become live here when its locate ends, so the drain
// does not end (and leave the cluster, stranding the scope) while a locate
// is in flight. Here the locate waits on a host that never answers, and
// fails when its requests time out.
func TestDrainWaitsForLocatesInFlight(t *testing.T) {
	// It waits seconds for the silent host's requests to time out, in a
	// process of its own: the other tests need not wait for it.
	t.Parallel()
	if !inOwnProcess(t) {
		return
	}
	const clusterName = "test-drain-locate"
	gossip, silent, stop := silentHost(t, "s", clusterName)
	n := testNode(t, func(c *Config) {
		c.NodeName, c.ClusterName, c.Join = "a", clusterName, []string{gossip}
	})
	// The transport must give up on the silent host before the node
	// closes: protoactor-go closes a connection it is still opening only
	// once the attempt ends.
	gaveUp := make(chan struct{}, 1)
	sub := n.Cluster().System().EventStream.Subscribe(func(evt any) {
		if e, ok := evt.(*remote.EndpointTerminatedEvent); ok && e.Address == silent {
			select {
			case gaveUp <- struct{}{}:
			default:
			}
		}
	})
	defer n.Cluster().System().EventStream.Unsubscribe(sub)
	waitFor(t, 10*time.Second, "the silent host to be an alive member", func() bool {
		m, ok := n.Cluster().View().Member("s")
		return ok && m.State == cluster.StateAlive
	})
	ch := channelOwnedBy("locating", "a", "a", "s")
	args, _ := json.Marshal(actors.ScopeArgs{Kind: clusterpb.Kind_KIND_CHANNEL, ID: ch})
	pulled := make(chan *clusterpb.Reply, 1)
	n.Cluster().RequestNode("a", &clusterpb.Request{Kind: clusterpb.Kind_KIND_NODE, Target: "a", Op: actors.OpPull, Args: args},
		time.Minute, func(r *clusterpb.Reply) { pulled <- r })
	ctx := ctxT(t)
	locating := func() int {
		st, ok := n.stats(ctx, "a")
		if !ok {
			t.Fatal("no stats from the host")
		}
		return st.Locating
	}
	waitFor(t, 5*time.Second, "the locate to start", func() bool { return locating() == 1 })

	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := n.Drain(dctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if l := locating(); l != 0 {
		t.Fatalf("the drain ended with %d locates in flight", l)
	}
	select {
	case r := <-pulled:
		if r.Error == nil {
			t.Fatal("the locate succeeded with a host that never answers")
		}
	case <-ctx.Done():
		t.Fatal("the pull was never answered")
	}
	stop()
	select {
	case <-gaveUp:
	case <-ctx.Done():
		t.Fatal("the transport never gave up on the silent host")
	}
}
