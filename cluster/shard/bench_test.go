package shard

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// BenchmarkRoundOneProposal is the loop's own cost per round on a node
// leading 64 single-replica shards: one proposal, written, committed,
// applied and answered, each round (on an in-memory filesystem, so no
// fsync). It shows the fixed cost of a round over every group.
func BenchmarkRoundOneProposal(b *testing.B) {
	fs := vfs.NewMem()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: quietPebble{}})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	popts := &pebble.Options{}
	popts.EnsureDefaults()
	net := NewMemNetwork(1)
	e, err := New(Config{
		DB:           db,
		Snapshots:    raftstore.Env{DB: db, FS: fs, Dir: "snaps", Writer: popts.MakeWriterOptions(0, db.TableFormat())},
		Cluster:      "bench",
		Node:         "a",
		Store:        1001,
		Transport:    net.Transport("a"),
		StateMachine: kvSM{},
		Timing:       Timing{Tick: time.Hour, HeartbeatTicks: 1, ElectionTicks: 10},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Stop()
	e.spawn = func(func()) {}
	net.Register("a", e)
	const shards = 64
	if err := e.Bootstrap(shards); err != nil {
		b.Fatal(err)
	}
	for range 10 {
		e.round()
	}
	streams := make([]*Stream, shards)
	for s := range uint32(shards) {
		g := e.groups[s]
		if g == nil || !g.leader {
			b.Fatalf("shard %d has no leader", s)
		}
		streams[s] = NewStream(s, g.term, "")
	}
	acked := 0
	done := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
		acked++
	}
	cmd := []byte("k=v")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e.Propose(streams[i%shards], cmd, done)
		e.round()
	}
	b.StopTimer()
	e.round()
	if acked != b.N {
		b.Fatalf("%d of %d proposals answered", acked, b.N)
	}
}
