package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/persistence/raftstore"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestNewNodesAllStartedWithJoinFormOneCluster: three new hosts each
// started with --join of the other two (as scripts and the chaos harness
// start them) form one cluster between them, whichever starts first.
func TestNewNodesAllStartedWithJoinFormOneCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	names := []string{"n1", "n2", "n3"}
	gossip := map[string]string{}
	for _, n := range names {
		gossip[n] = freeAddr(t)
	}
	c := &testCluster{t: t, procs: map[string]*proc{}, dirs: map[string]string{}}
	for _, n := range []string{"n3", "n1", "n2"} {
		var join []string
		for _, o := range names {
			if o != n {
				join = append(join, gossip[o])
			}
		}
		c.dirs[n] = t.TempDir()
		c.procs[n] = startProc(t, "--node-name", n, "--listen", "127.0.0.1:0", "--cluster-bind", gossip[n], "--data", c.dirs[n],
			"--failure-detection", "fast", "--join", strings.Join(join, ","), "--cluster-name", "test-"+t.Name())
		c.order = append(c.order, n)
	}
	c.waitAlive(3)
	c.waitSettled(names...)
	admin := adminClient(t, c.urls())
	if _, _, err := admin.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: "together", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
}

// TestShardCountIsFixedForTheCluster: a node started with a --shards that
// differs from its cluster's refuses to run, with a message saying what
// to do, whether it joins or restarts.
func TestShardCountIsFixedForTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	args := []string{"--node-name", "n1", "--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", dir,
		"--failure-detection", "fast", "--shards", "8", "--cluster-name", "test-" + t.Name()}
	p := startProc(t, args...)
	v, err := (&testCluster{t: t, procs: map[string]*proc{"n1": p}}).view("n1")
	if err != nil || v.ShardCount != 8 || len(v.Shards) != 8 {
		t.Fatalf("a cluster formed with --shards 8 shows %d shards (%d listed), %v", v.ShardCount, len(v.Shards), err)
	}
	// A node joining it with another count exits.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	join := exec.CommandContext(ctx, binary(t), "serve", "--node-name", "n2", "--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0",
		"--data", t.TempDir(), "--failure-detection", "fast", "--shards", "16", "--join", p.gossip, "--cluster-name", "test-"+t.Name())
	join.Stdout, join.Stderr = &out, &out
	if err := join.Run(); err == nil || !strings.Contains(out.String(), "has 8 shards; --shards 16 does not match") {
		t.Fatalf("a joiner with --shards 16: %v\n%s", err, out.String())
	}
	// The node itself, restarted with another count, refuses to start.
	p.kill()
	args[len(args)-3] = "32"
	out.Reset()
	restart := exec.CommandContext(ctx, binary(t), append([]string{"serve"}, args...)...)
	restart.Stdout, restart.Stderr = &out, &out
	if err := restart.Run(); err == nil || !strings.Contains(out.String(), "belongs to a cluster of 8 shards; --shards 32 does not match") {
		t.Fatalf("a restart with --shards 32: %v\n%s", err, out.String())
	}
}

// TestStage1DataIsConvertedWhenForming: a data directory of the stage-1
// (unreplicated) format is converted when its node forms a new cluster —
// its channels and their history are served as before — and refused with
// an explanation when the node is started to join a cluster.
func TestStage1DataIsConvertedWhenForming(t *testing.T) {
	dir := t.TempDir()
	n := testNode(t, func(c *Config) { c.DataDir, c.NodeName = dir, "old" })
	c := dial(t, n, "alice")
	ctx := ctxT(t)
	if _, _, err := c.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "kept", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"one", "two", "three"} {
		if _, err := c.Send(ctx, protocol.SendArgs{Channel: "kept", Text: text, ClientID: text}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	toStage1(t, filepath.Join(dir, "store"))

	// Started to join a cluster, it refuses and says what to do.
	_, err := NewNode(Config{DataDir: dir, NodeName: "old", Listen: "127.0.0.1:0", ClusterBind: "127.0.0.1:0", DevAuth: true,
		Logger: testLogger(), Limits: protocol.DefaultLimits(), Join: []string{"127.0.0.1:1"}, Network: cluster.NewMemNetwork()})
	if err == nil || !strings.Contains(err.Error(), "stage-1 (unreplicated) format") || !strings.Contains(err.Error(), "without --join") {
		t.Fatalf("joining with stage-1 data: %v", err)
	}
	// Started alone, it converts and serves the channel as it was.
	n = testNode(t, func(c *Config) { c.DataDir, c.NodeName = dir, "old" })
	c = dial(t, n, "alice")
	msgs := allMessages(t, c, "kept")
	if len(msgs) != 3 || msgs[0].Text != "one" || msgs[2].Text != "three" {
		t.Fatalf("history after conversion: %d messages", len(msgs))
	}
	m, err := c.Send(ctx, protocol.SendArgs{Channel: "kept", Text: "four", ClientID: "four"})
	if err != nil || m.Segment != 4 {
		t.Fatalf("send after conversion: %v %+v", err, m)
	}
	// A resend of a stage-1 acknowledgement is recognised.
	if again, err := c.Send(ctx, protocol.SendArgs{Channel: "kept", Text: "two", ClientID: "two"}); err != nil || again.Segment != 2 {
		t.Fatalf("resend after conversion: %v %+v", err, again)
	}
}

// toStage1 rewrites a store into the stage-1 layout: every scope's records
// under its kind and id (with a live fence), no raft state, no format.
func toStage1(t *testing.T, path string) {
	t.Helper()
	db, err := pebble.Open(path, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{0x02}, UpperBound: []byte{0x03}})
	if err != nil {
		t.Fatal(err)
	}
	fenced := map[string]bool{}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[5:] // past the shard prefix
		if len(k) < 2 || (k[0] != byte(persistence.KindChannel) && k[0] != byte(persistence.KindUser)) {
			continue // the shard's applied state
		}
		scope := string(k[:2+int(k[1])])
		if !fenced[scope] {
			fenced[scope] = true
			if err := b.Set(append([]byte(scope), 0x01), persistence.U64(1), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Set(bytes.Clone(k), bytes.Clone(it.Value()), nil); err != nil {
			t.Fatal(err)
		}
	}
	it.Close()
	lo, _ := raftstore.FormatSpan()
	if err := b.DeleteRange(lo, []byte{0x03}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if len(fenced) == 0 {
		t.Fatal("no scope to convert")
	}
}
