package main

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// Drain takes the node out of service without losing anything:
//
//  1. a gateway closes its sessions with "reconnect elsewhere" (4001);
//  2. a host gossips that it is draining: it is no longer wanted for any
//     shard, so it hands the leadership of the shards it leads to other
//     replicas, and the shards' leaders move its replicas to other hosts
//     (a new replica caught up first, then swapped in), or drop them when
//     no host is left to take them (keeping two live copies);
//  3. once it holds no replica, it leaves the cluster for good.
//
// If ctx ends before every replica moved, the node does not leave: it
// stays a known host, and its replicas stay members of their shards. So
// it does, sooner, when no other host is left to take its replicas
// (every other one drains too, or is down: the whole cluster is being
// stopped) — as a single host does.
func (n *Node) Drain(ctx context.Context) error {
	n.ready.Store(false)
	if n.gw != nil {
		if err := n.gw.Drain(ctx); err != nil {
			n.log.Warn("closing sessions for drain", "err", err)
		}
	}
	if !n.host {
		return n.cl.Leave(5 * time.Second)
	}
	if !n.otherHosts() {
		// A single host (or the last one up) has nobody to hand its
		// shards to: it stays a known host and keeps them on its disk.
		n.log.Info("no other host to hand shards over to; keeping them here")
		return nil
	}
	if err := n.cl.SetDraining(true); err != nil {
		n.log.Warn("announcing drain", "err", err)
	}
	n.feedHosts()
	left, err := n.waitEmpty(ctx)
	if errors.Is(err, errNoHostLeft) {
		n.log.Warn("drain stopped: every other host is draining or down, so none can take this node's replicas; keeping them here, not leaving the cluster", "replicas", left)
		return nil
	}
	if err != nil {
		n.log.Error("drain incomplete: not leaving the cluster", "replicas_left", left, "err", err)
		return err
	}
	n.log.Info("drained: every replica moved; leaving the cluster")
	return n.cl.Leave(5 * time.Second)
}

// otherHosts reports whether another host of this cluster is alive to
// take replicas over.
func (n *Node) otherHosts() bool {
	cl, _ := n.cl.Identity()
	for _, m := range n.cl.View().Members() {
		if m.Name != n.cl.Name() && m.IsHost() && m.State == cluster.StateAlive && !m.Meta.Draining && m.Compatible() && m.Meta.Cluster == cl {
			return true
		}
	}
	return false
}

// errNoHostLeft ends a drain that no other host can take replicas from.
var errNoHostLeft = errors.New("no other host is left to take the replicas")

// drainAloneGrace is how long a drain goes on with no other host to take
// its replicas before it stops: a member may be suspected for a moment,
// or restart, without the drain giving up.
const drainAloneGrace = 3 * time.Second

// waitEmpty waits until this node holds no replica (an uninitialized one,
// still waiting for its shard's data, holds nothing and does not count),
// or until no other host has been there to take them for drainAloneGrace
// (errNoHostLeft).
func (n *Node) waitEmpty(ctx context.Context) (int, error) {
	r := n.repl.Load()
	if r == nil {
		return 0, nil
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	logged := time.Now()
	var alone time.Time // since when no other host could take a replica
	for {
		left := 0
		for _, st := range r.engine.Statuses() {
			if st.Initialized {
				left++
			}
		}
		if left == 0 {
			return 0, nil
		}
		switch {
		case n.otherHosts():
			alone = time.Time{}
		case alone.IsZero():
			alone = time.Now()
		case time.Since(alone) >= drainAloneGrace:
			return left, errNoHostLeft
		}
		if time.Since(logged) > 5*time.Second {
			n.log.Info("draining: replicas still here", "replicas", left)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return left, ctx.Err()
		case <-t.C:
		}
	}
}

// nodeStats asks every alive host for its active actor counts.
func (n *Node) nodeStats(ctx context.Context) map[string]*actors.ActiveCountResult {
	out := map[string]*actors.ActiveCountResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range n.cl.View().Members() {
		if !m.IsHost() || m.State != cluster.StateAlive {
			continue
		}
		wg.Go(func() {
			if res, ok := n.stats(ctx, m.Name); ok {
				mu.Lock()
				out[m.Name] = res
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// stats asks one host for its active actor counts (waiting up to 2 s).
func (n *Node) stats(ctx context.Context, node string) (*actors.ActiveCountResult, bool) {
	done := make(chan *clusterpb.Reply, 1)
	n.cl.RequestNode(node, &clusterpb.Request{Kind: clusterpb.Kind_KIND_NODE, Target: node, Op: actors.OpStats},
		2*time.Second, func(r *clusterpb.Reply) { done <- r })
	var r *clusterpb.Reply
	select {
	case r = <-done:
	case <-ctx.Done():
		return nil, false
	}
	var res actors.ActiveCountResult
	if r.Error != nil || json.Unmarshal(r.Result, &res) != nil {
		return nil, false
	}
	return &res, true
}
