package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// testCluster runs real node processes on loopback.
type testCluster struct {
	t     *testing.T
	seed  string // gossip address of the first node
	procs map[string]*proc
	dirs  map[string]string
	order []string
	// hc makes HTTP requests to the nodes (nil: http.DefaultClient); a
	// cluster serving TLS sets one that trusts its CA.
	hc *http.Client
}

func (c *testCluster) httpClient() *http.Client {
	if c.hc != nil {
		return c.hc
	}
	return http.DefaultClient
}

func newTestCluster(t *testing.T, names ...string) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := &testCluster{t: t, procs: map[string]*proc{}, dirs: map[string]string{}}
	var hosts []string
	for _, n := range names {
		name, roles, _ := strings.Cut(n, ":")
		if roles != "" {
			c.start(name, "--roles", roles)
		} else {
			c.start(name)
		}
		if roles == "" || strings.Contains(roles, "host") {
			hosts = append(hosts, name)
		}
	}
	c.waitAlive(len(names))
	c.waitSettled(hosts...)
	return c
}

func (c *testCluster) args(name string, extra ...string) []string {
	if c.dirs[name] == "" {
		c.dirs[name] = c.t.TempDir()
	}
	a := []string{"--node-name", name, "--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0",
		"--data", c.dirs[name], "--failure-detection", "fast", "--drain-timeout", "45s", "--cluster-name", "test-" + c.t.Name()}
	if c.seed != "" {
		a = append(a, "--join", c.seed)
	}
	return append(a, extra...)
}

// start runs (or restarts) a node.
func (c *testCluster) start(name string, extra ...string) *proc {
	c.t.Helper()
	p := startProc(c.t, c.args(name, extra...)...)
	if c.seed == "" {
		c.seed = p.gossip
	}
	if _, ok := c.procs[name]; !ok {
		c.order = append(c.order, name)
	}
	c.procs[name] = p
	return p
}

// urls returns the WebSocket URLs of the nodes given (all when none).
func (c *testCluster) urls(names ...string) []string {
	if len(names) == 0 {
		names = c.order
	}
	var out []string
	for _, n := range names {
		out = append(out, c.procs[n].url())
	}
	return out
}

// clusterView is GET /v1/cluster.
type clusterView struct {
	Node    string `json:"node"`
	Members []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Roles    []string
		Channels *int   `json:"channels"`
		Since    string `json:"since"`
		DiskFull bool   `json:"disk_full"`
	} `json:"members"`
	Placement  []string `json:"placement"`
	ShardCount uint32   `json:"shard_count"`
	Shards     []struct {
		ID       uint32 `json:"id"`
		Leader   string `json:"leader"`
		Term     uint64 `json:"term"`
		Replicas []struct {
			Node  string `json:"node"`
			Role  string `json:"role"`
			State string `json:"state"`
		} `json:"replicas"`
	} `json:"shards"`
}

// settled reports whether, in v, every shard has its replicas on the
// hosts placement gives it (the first three in rank), all caught up, and
// is led by its preferred replica (the first in rank).
func (v clusterView) settled(hosts ...string) string {
	if v.ShardCount == 0 || len(v.Shards) != int(v.ShardCount) {
		return fmt.Sprintf("%d of %d shards known", len(v.Shards), v.ShardCount)
	}
	for _, sh := range v.Shards {
		rank := cluster.Rank(hosts, fmt.Sprintf("shard/%d", sh.ID))
		want := slices.Clone(rank[:min(3, len(rank))])
		var got []string
		for _, r := range sh.Replicas {
			if r.Role != "voter" || (r.Node != sh.Leader && r.State != "replicate") {
				return fmt.Sprintf("shard %d: replica on %s is a %s in state %q", sh.ID, r.Node, r.Role, r.State)
			}
			got = append(got, r.Node)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) || sh.Leader != rank[0] {
			return fmt.Sprintf("shard %d: replicas %v led by %q, want %v led by %s", sh.ID, got, sh.Leader, want, rank[0])
		}
	}
	return ""
}

// waitSettled waits until the cluster of the named hosts has placed and
// balanced every shard, as every node sees it.
func (c *testCluster) waitSettled(hosts ...string) {
	c.t.Helper()
	why := ""
	deadline := time.Now().Add(60 * time.Second)
	for _, name := range c.order {
		p := c.procs[name]
		if p.cmd.ProcessState != nil {
			continue
		}
		for {
			v, err := c.view(name)
			if why = v.settled(hosts...); err == nil && why == "" {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("the cluster did not settle as %s sees it: %s %v", name, why, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (c *testCluster) view(name string) (clusterView, error) {
	var v clusterView
	resp, err := c.httpClient().Get(c.procs[name].base() + "/v1/cluster")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// fanout reads a node's switchboard_channel_events_received_total and
// switchboard_deliveries_total.
func (c *testCluster) fanout(name string) [2]float64 {
	c.t.Helper()
	fams := procMetrics(c.t, c.httpClient(), c.procs[name].base())
	var out [2]float64
	for i, m := range []string{"switchboard_channel_events_received_total", "switchboard_deliveries_total"} {
		f := fams[m]
		if f == nil || len(f.GetMetric()) != 1 {
			c.t.Fatalf("%s /metrics has no %s", name, m)
		}
		out[i] = f.GetMetric()[0].GetCounter().GetValue()
	}
	return out
}

// memberDiskFull reports whether v shows member name's disk full.
func (v clusterView) memberDiskFull(name string) bool {
	for _, m := range v.Members {
		if m.Name == name {
			return m.DiskFull
		}
	}
	return false
}

func (v clusterView) member(name string) (state string, channels int) {
	for _, m := range v.Members {
		if m.Name == name {
			if m.Channels != nil {
				channels = *m.Channels
			}
			return m.State, channels
		}
	}
	return "", 0
}

// procMetrics scrapes a node process's /metrics at base.
func procMetrics(t *testing.T, hc *http.Client, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s/metrics: %v", base, err)
	}
	return fams
}

// aliveMembers counts the members the node at addr shows alive in
// /v1/cluster (0 when it does not answer).
func aliveMembers(addr string) int { return aliveMembersAt(http.DefaultClient, "http://"+addr) }

// aliveMembersAt is aliveMembers of the node whose HTTP API is at base.
func aliveMembersAt(hc *http.Client, base string) int {
	resp, err := hc.Get(base + "/v1/cluster")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var v clusterView
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return 0
	}
	n := 0
	for _, m := range v.Members {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

// waitAlive waits until every running node sees n alive members.
func (c *testCluster) waitAlive(n int) {
	c.t.Helper()
	waitFor(c.t, 20*time.Second, fmt.Sprintf("%d alive members everywhere", n), func() bool {
		for name, p := range c.procs {
			if p.cmd.ProcessState != nil {
				continue
			}
			if aliveMembersAt(c.httpClient(), c.procs[name].base()) != n {
				return false
			}
		}
		return true
	})
}

// owner computes a channel's owner among names, as placement does.
// owner returns the node that serves ch once a cluster of the named hosts
// has settled: the preferred leader of its shard (the first in rank of the
// shard's replica placement), in a cluster of DefaultShards shards.
func owner(ch string, names ...string) string {
	return scopeOwner(clusterpb.Kind_KIND_CHANNEL, ch, names...)
}

// scopeOwner is owner for any kind of scope.
func scopeOwner(kind clusterpb.Kind, id string, names ...string) string {
	sh := cluster.ShardOf(cluster.ScopeKey(kind, id), DefaultShards)
	return cluster.Owner(names, fmt.Sprintf("shard/%d", sh))
}

// channelOwnedBy returns a channel name with prefix that a settled cluster
// of names serves on want.
func channelOwnedBy(prefix, want string, names ...string) string {
	for i := 0; ; i++ {
		ch := prefix + strconv.Itoa(i)
		if owner(ch, names...) == want {
			return ch
		}
	}
}

// adminClient is the "admin" session tests create and check channels
// with. It reads no events: they are discarded, for a client whose
// Events() nobody reads stops reading its connection once the buffer is
// full (creating a channel watches it), and its replies with it.
func adminClient(t *testing.T, urls []string) *client.Client {
	t.Helper()
	return clusterClient(t, urls, "admin", func(o *client.Options) { o.OnEvent = func(client.Event) {} })
}

func clusterClient(t *testing.T, urls []string, user string, opts ...func(*client.Options)) *client.Client {
	t.Helper()
	o := client.Options{URLs: urls, UserID: user, MaxRetry: 40 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, o)
	if err != nil {
		t.Fatalf("dial %v: %v", urls, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// traffic sends messages from several clients to several channels and
// records every acknowledgement.
type traffic struct {
	mu      sync.Mutex
	acked   map[string][]acked
	errs    []error
	total   atomic.Int64
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	clients []*client.Client // the senders'
}

type acked struct {
	clientID string
	msg      *protocol.Message
}

func startTraffic(t *testing.T, urls []string, channels []string, senders int, opts ...func(*client.Options)) *traffic {
	t.Helper()
	return startTrafficOn(t, func(int) []string { return urls }, channels, senders, opts...)
}

// startTrafficOn is startTraffic with sender i's gateways urlsOf(i).
func startTrafficOn(t *testing.T, urlsOf func(i int) []string, channels []string, senders int, opts ...func(*client.Options)) *traffic {
	t.Helper()
	tr := &traffic{acked: map[string][]acked{}}
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	for i := range senders {
		c := clusterClient(t, urlsOf(i), "sender"+strconv.Itoa(i), opts...)
		tr.clients = append(tr.clients, c)
		go func() {
			for range c.Events() { // keep the stream drained
			}
		}()
		for _, ch := range channels {
			if _, err := c.Join(ctx, ch); err != nil {
				t.Fatalf("sender %d join %s: %v", i, ch, err)
			}
		}
		tr.wg.Go(func() {
			for j := 0; ctx.Err() == nil; j++ {
				ch := channels[(i+j)%len(channels)]
				cid := fmt.Sprintf("s%d-%d", i, j)
				m, err := c.Send(ctx, protocol.SendArgs{Channel: ch, Text: cid, ClientID: cid})
				if err != nil {
					if ctx.Err() == nil {
						tr.mu.Lock()
						tr.errs = append(tr.errs, fmt.Errorf("%s %s: %w", ch, cid, err))
						tr.mu.Unlock()
					}
					continue
				}
				tr.mu.Lock()
				tr.acked[ch] = append(tr.acked[ch], acked{cid, m})
				tr.mu.Unlock()
				tr.total.Add(1)
			}
		})
	}
	return tr
}

// waitMore waits until n more sends are acknowledged.
func (tr *traffic) waitMore(t *testing.T, n int64, timeout time.Duration) {
	t.Helper()
	target := tr.total.Load() + n
	waitFor(t, timeout, fmt.Sprintf("%d acknowledged sends", target), func() bool { return tr.total.Load() >= target })
}

// perChannel returns the acknowledged sends of each channel so far.
func (tr *traffic) perChannel() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string]int{}
	for ch, a := range tr.acked {
		out[ch] = len(a)
	}
	return out
}

// perSender returns the acknowledged sends of each sender ("s0", ...) so
// far.
func (tr *traffic) perSender() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string]int{}
	for _, acks := range tr.acked {
		for _, a := range acks {
			s, _, _ := strings.Cut(a.clientID, "-")
			out[s]++
		}
	}
	return out
}

func (tr *traffic) stop() {
	tr.cancel()
	tr.wg.Wait()
}

// verify checks, per channel, that every acknowledged message is present
// once, at its segment, and that segments are contiguous from 1.
func (tr *traffic) verify(t *testing.T, c *client.Client) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, e := range tr.errs {
		t.Errorf("client saw an error: %v", e)
	}
	for ch, acks := range tr.acked {
		msgs := allMessages(t, c, ch)
		seen := map[string]bool{}
		for i, m := range msgs {
			if m.Segment != uint64(i+1) {
				t.Fatalf("%s: message %d has segment %d", ch, i, m.Segment)
			}
			if m.ClientID != "" && m.User != "" {
				key := m.User + "/" + m.ClientID
				if seen[key] {
					t.Fatalf("%s: %s stored twice", ch, key)
				}
				seen[key] = true
			}
		}
		for _, a := range acks {
			if a.msg.Segment > uint64(len(msgs)) || msgs[a.msg.Segment-1].ID != a.msg.ID {
				t.Fatalf("%s: acknowledged %s (segment %d) is missing", ch, a.clientID, a.msg.Segment)
			}
		}
	}
}

// watcher is a session that joins channels and records every message.new
// it receives, to check delivery across channel moves.
type watcher struct {
	mu   sync.Mutex
	seen map[string]map[string]int // channel → message id → times seen
	last map[string]uint64         // channel → last seq
	bad  []string
}

func startWatcher(t *testing.T, urls []string, channels []string, opts ...func(*client.Options)) *watcher {
	t.Helper()
	w := &watcher{seen: map[string]map[string]int{}, last: map[string]uint64{}}
	c := clusterClient(t, urls, "watcher", append(opts, func(o *client.Options) {
		o.OnEvent = func(e client.Event) {
			if e.Name != protocol.EventMessageNew {
				return
			}
			var d protocol.MessageResult
			if json.Unmarshal(e.Data, &d) != nil {
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if e.Seq <= w.last[e.Channel] {
				w.bad = append(w.bad, fmt.Sprintf("%s: seq %d after %d", e.Channel, e.Seq, w.last[e.Channel]))
			}
			w.last[e.Channel] = e.Seq
			if w.seen[e.Channel] == nil {
				w.seen[e.Channel] = map[string]int{}
			}
			w.seen[e.Channel][d.Message.ID]++
		}
	})...)
	ctx := ctxT(t)
	for _, ch := range channels {
		if _, err := c.Join(ctx, ch); err != nil {
			t.Fatalf("watcher join %s: %v", ch, err)
		}
	}
	return w
}

// verify waits until the watcher has every acknowledged message, and
// checks none came twice or out of order.
func (w *watcher) verify(t *testing.T, tr *traffic) {
	t.Helper()
	tr.mu.Lock()
	acks := map[string][]acked{}
	for ch, a := range tr.acked {
		acks[ch] = a
	}
	tr.mu.Unlock()
	missing := func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		for ch, as := range acks {
			for _, a := range as {
				if w.seen[ch][a.msg.ID] == 0 {
					return fmt.Sprintf("%s segment %d", ch, a.msg.Segment)
				}
			}
		}
		return ""
	}
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for m := missing(); m != ""; m = missing() {
		select {
		case <-deadline:
			t.Fatalf("watcher never received %s", m)
		case <-tick.C:
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.bad {
		t.Errorf("watcher: %s", b)
	}
	for ch, ids := range w.seen {
		for id, n := range ids {
			if n > 1 {
				t.Errorf("watcher: %s message %s delivered %d times", ch, id, n)
			}
		}
	}
}
