package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// partitionScenario cuts n1, the node leading a channel's shard, off from
// n2 and n3, both ways, while a sender on every node's gateway sends to
// that channel and to one n2 leads. The majority elects a leader and goes
// on; n1 steps down and acknowledges nothing it cannot replicate, and its
// sender's retries succeed once the cut heals. Nothing acknowledged is
// lost or stored twice, a watcher on either side gets every message once
// and in order, and no client sees an error.
type partitionScenario struct {
	urls []string // n1's, n2's and n3's gateways
	// leader says who node on (0: n1) believes leads ch's shard.
	leader    func(on int, ch string) string
	cut, heal func()
	// ready, when set, says ch's shard may be cut (its three replicas are
	// voters);
	// whileCut, when set, checks the cut once n1 has stepped down; healed,
	// when set, says ch's replicas agree again after the heal.
	ready, healed func(ch string) bool
	whileCut      func()
}

func (sc partitionScenario) run(t *testing.T, names []string) {
	t.Helper()
	cut, other := channelOwnedBy("pcut", "n1", names...), channelOwnedBy("pfar", "n2", names...)
	settled := func(ch, want string) func() bool {
		return func() bool {
			for on := range sc.urls {
				if sc.leader(on, ch) != want {
					return false
				}
			}
			return sc.ready == nil || sc.ready(ch)
		}
	}
	waitFor(t, 30*time.Second, "n1 to lead "+cut, settled(cut, "n1"))
	waitFor(t, 30*time.Second, "n2 to lead "+other, settled(other, "n2"))
	admin := adminClient(t, sc.urls[1:])
	for _, ch := range []string{cut, other} {
		if _, _, err := admin.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	// A watcher on each side: the cut-off side's misses what the majority
	// commits during the cut, and must get it all after the heal.
	watchers := []*watcher{startWatcher(t, sc.urls[1:2], []string{cut, other}), startWatcher(t, sc.urls[0:1], []string{cut, other})}
	// Sender i is on node i only: the cut-off node's sender has no way
	// round the cut but to wait it out (its retries last 40 s).
	tr := startTrafficOn(t, func(i int) []string { return sc.urls[i : i+1] }, []string{cut, other}, 3)
	tr.waitMore(t, 30, 20*time.Second)

	before := tr.perChannel()
	cutAt := time.Now()
	sc.cut()
	waitFor(t, 30*time.Second, "the majority to elect a leader of "+cut, func() bool {
		l := sc.leader(1, cut)
		return l == "n2" || l == "n3"
	})
	t.Logf("the majority elected a leader %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "sends to both channels during the cut", func() bool {
		now := tr.perChannel()
		return now[cut] >= before[cut]+20 && now[other] >= before[other]+20
	})
	// n1 no longer believes it leads: it stepped down when it lost the
	// majority's heartbeats (CheckQuorum).
	waitFor(t, 30*time.Second, "n1 to step down", func() bool { return sc.leader(0, cut) != "n1" })
	t.Logf("n1 stepped down %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	if sc.whileCut != nil {
		sc.whileCut()
	}
	// Cut off, n1 acknowledges nothing: its sender's sends wait.
	stepped := tr.perSender()
	tr.waitMore(t, 20, 20*time.Second)
	if cutOff := tr.perSender(); cutOff["s0"] != stepped["s0"] {
		t.Errorf("n1 acknowledged %d sends while cut off", cutOff["s0"]-stepped["s0"])
	}

	healAt := time.Now()
	sc.heal()
	waitFor(t, 40*time.Second, "n1's sender to be acknowledged again", func() bool { return tr.perSender()["s0"] > stepped["s0"] })
	t.Logf("n1's sender acknowledged again %v after the heal", time.Since(healAt).Round(time.Millisecond))
	tr.waitMore(t, 30, 20*time.Second)
	tr.stop()
	tr.verify(t, adminClient(t, sc.urls[2:]))
	for _, w := range watchers {
		w.verify(t, tr)
	}
	if sc.healed != nil {
		waitFor(t, 30*time.Second, "the replicas of "+cut+" to agree", func() bool { return sc.healed(cut) })
	}
}

// keyed adds an operator key to every request it carries.
type keyed struct{ key string }

func (k keyed) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+k.key)
	return http.DefaultTransport.RoundTrip(r)
}

// newFaultCluster starts names as node processes with --fault-injection
// and the operator key key, and waits until they see each other alive
// and every shard is settled.
func newFaultCluster(t *testing.T, key string, names ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, procs: map[string]*proc{}, dirs: map[string]string{}, hc: &http.Client{Transport: keyed{key}}}
	for _, n := range names {
		c.start(n, "--fault-injection", "--api-key", key)
	}
	c.waitAlive(len(names))
	c.waitSettled(names...)
	return c
}

// faultCall calls node on's fault-injection endpoint path with query
// (if any) and the operator key.
func (c *testCluster) faultCall(method, on, path, query, key string) (int, string) {
	u := c.procs[on].base() + path
	if query != "" {
		u += "?" + query
	}
	return operatorDoWith(c.t, c.httpClient(), method, u, key)
}

// TestPartitionOfProcesses is the partition scenario on three node
// processes started with --fault-injection, cut apart through
// /v1/cluster/partition: the cut covers gossip (each side declares the
// other dead), the actor transport and the raft streams, on real sockets.
func TestPartitionOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const key = "partition-test-key"
	names := []string{"n1", "n2", "n3"}
	c := newFaultCluster(t, key, names...)
	partition := func(method, on, nodes string) (int, string) {
		if nodes != "" {
			nodes = "nodes=" + nodes
		}
		return c.faultCall(method, on, "/v1/cluster/partition", nodes, key)
	}
	set := func(method, on, nodes string) {
		t.Helper()
		if st, body := partition(method, on, nodes); st != http.StatusOK {
			t.Fatalf("%s %s partition %s: %d %s", method, on, nodes, st, body)
		}
	}
	// Bad input changes nothing.
	if st, body := partition("PUT", "n1", "n2,nobody"); st != http.StatusBadRequest {
		t.Fatalf("cut from an unknown node: %d %s", st, body)
	}
	if st, body := partition("PUT", "n1", "n1"); st != http.StatusBadRequest {
		t.Fatalf("cut from itself: %d %s", st, body)
	}
	if st, body := operatorDo(t, "PUT", c.procs["n1"].base()+"/v1/cluster/partition?nodes=n2", ""); st != http.StatusUnauthorized {
		t.Fatalf("cut without the key: %d %s", st, body)
	}
	if st, body := partition("GET", "n1", ""); st != http.StatusOK || body != "{\"cut\":[]}\n" {
		t.Fatalf("after refused cuts: %d %s", st, body)
	}

	state := func(on, of string) string {
		v, err := c.view(on)
		if err != nil {
			return err.Error()
		}
		for _, m := range v.Members {
			if m.Name == of {
				return m.State
			}
		}
		return "absent"
	}
	sc := partitionScenario{
		urls: c.urls(names...),
		leader: func(on int, ch string) string {
			var l struct {
				Leader string `json:"leader"`
			}
			resp, err := c.httpClient().Get(c.procs[names[on]].base() + "/v1/cluster/locate?channel=" + ch)
			if err != nil {
				return ""
			}
			defer resp.Body.Close()
			if json.NewDecoder(resp.Body).Decode(&l) != nil {
				return ""
			}
			return l.Leader
		},
		cut: func() {
			set("PUT", "n1", "n2,n3")
			set("PUT", "n2", "n1")
			set("PUT", "n3", "n1")
		},
		whileCut: func() {
			// Gossip is cut too: each side has declared the other dead.
			waitFor(t, 30*time.Second, "each side to find the other dead", func() bool {
				return state("n1", "n2") == "dead" && state("n1", "n3") == "dead" && state("n2", "n1") == "dead" && state("n3", "n1") == "dead"
			})
			if s := state("n2", "n3"); s != "alive" {
				t.Fatalf("n2 sees n3 %s", s)
			}
			if st, body := partition("GET", "n1", ""); st != http.StatusOK || body != "{\"cut\":[\"n2\",\"n3\"]}\n" {
				t.Fatalf("n1's cuts: %d %s", st, body)
			}
		},
		heal: func() {
			for _, n := range names {
				set("DELETE", n, "")
			}
		},
		healed: func(string) bool { return aliveMembersAt(c.httpClient(), c.procs["n1"].base()) == 3 },
	}
	sc.run(t, names)
	c.waitAlive(3)
}

// TestPausedGatewayGetsItsWatchesBack: a gateway paused long enough for
// the others to declare it dead (a false death, seen one way: it never
// saw them go) has its watchers forgotten by the channels it watched.
// Its sessions, which did not notice the pause, must still get every
// message once it runs again.
func TestPausedGatewayGetsItsWatchesBack(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	c := newTestCluster(t, names...)
	ch := channelOwnedBy("gwp", "n2", names...)
	admin := adminClient(t, c.urls("n2"))
	if _, _, err := admin.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	// The watcher's session outlasts the pause: it does not reconnect.
	w := startWatcher(t, c.urls("n1"), []string{ch}, func(o *client.Options) { o.StallTimeout = time.Minute })
	tr := startTrafficOn(t, func(int) []string { return c.urls("n2") }, []string{ch}, 1)
	tr.waitMore(t, 20, 20*time.Second)
	dead := func(on, of string) bool {
		v, err := c.view(on)
		if err != nil {
			return false
		}
		for _, m := range v.Members {
			if m.Name == of {
				return m.State == "dead"
			}
		}
		return false
	}
	c.procs["n1"].pause()
	waitFor(t, 30*time.Second, "n2 to declare n1 dead", func() bool { return dead("n2", "n1") })
	tr.waitMore(t, 20, 20*time.Second)
	c.procs["n1"].resume()
	c.waitAlive(3)
	tr.waitMore(t, 40, 20*time.Second)
	tr.stop()
	tr.verify(t, admin)
	w.verify(t, tr)
}
