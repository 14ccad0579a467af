package main

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
)

// Drain takes the node out of service without losing anything:
//
//  1. a gateway closes its sessions with "reconnect elsewhere" (4001);
//  2. a host gossips that it is draining, which takes it out of placement,
//     and asks the new owner of every scope it holds to pull it (the owner
//     locates the scope, this node releases it, and the records move);
//  3. once it holds nothing live, it leaves the cluster for good.
//
// If ctx ends before every scope moved, the node does not leave: it stays a
// known host, so the scopes it still holds answer unavailable (and are
// never served empty elsewhere) until it comes back.
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
		// channels to: it stays a known host and keeps them on its disk.
		n.log.Info("no other host to hand channels over to; keeping them here")
		return nil
	}
	if err := n.cl.SetDraining(true); err != nil {
		n.log.Warn("announcing drain", "err", err)
	}
	left, err := n.handOverAll(ctx)
	if err != nil {
		n.log.Error("drain incomplete: not leaving the cluster", "scopes_left", left, "err", err)
		return err
	}
	n.log.Info("drained: every scope handed over; leaving the cluster")
	return n.cl.Leave(5 * time.Second)
}

// otherHosts reports whether another host is alive to take scopes over.
func (n *Node) otherHosts() bool {
	for _, m := range n.cl.View().Members() {
		if m.Name != n.cl.Name() && m.IsHost() && m.State == cluster.StateAlive && !m.Meta.Draining && m.Compatible() {
			return true
		}
	}
	return false
}

// handOverAll asks the new owners to pull every scope this node still
// holds — served or released but not yet dropped — a few at a time, until
// none is left or ctx ends. A released copy is only gone once its new
// owner serves the scope: until then it is the scope's data.
//
// A locate in flight here (started before the drain) may still make its
// scope live here. Locates are counted before the store is scanned, and
// the drain ends only after a scan that found nothing once none was in
// flight: no new one starts meanwhile, since a draining node owns nothing
// in its own view.
func (n *Node) handOverAll(ctx context.Context) (int, error) {
	for attempt := 0; ; attempt++ {
		locating := -1 // unknown until the host answers
		if st, ok := n.stats(ctx, n.cl.Name()); ok {
			locating = st.Locating
		}
		var scopes []persistence.Scope
		for _, kind := range []persistence.Kind{persistence.KindChannel, persistence.KindUser} {
			err := n.store.Scopes(kind, func(id string, _ uint64) bool {
				sc := persistence.Scope{Kind: kind, ID: id}
				if st, err := n.store.State(sc); err == nil && (st.Live() || st.HasData) {
					scopes = append(scopes, sc)
				}
				return true
			})
			if err != nil {
				return -1, err
			}
		}
		left := len(scopes) + max(locating, 0)
		if len(scopes) == 0 && locating == 0 {
			return 0, nil
		}
		if len(scopes) > 0 {
			n.log.Info("handing scopes over", "scopes", len(scopes), "round", attempt+1)
			n.pullAll(ctx, scopes)
		} else if attempt == 0 {
			n.log.Info("waiting for scopes being located here", "locating", locating)
		}
		if ctx.Err() != nil {
			return left, ctx.Err()
		}
		if attempt > 0 || len(scopes) == 0 {
			// Something refused or is still being located; give views
			// time to agree before retrying.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return left, ctx.Err()
			}
		}
	}
}

// pullAll sends OpPull for each scope to its new owner, 16 at a time.
func (n *Node) pullAll(ctx context.Context, scopes []persistence.Scope) {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, sc := range scopes {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			kind := clusterpb.Kind_KIND_CHANNEL
			if sc.Kind == persistence.KindUser {
				kind = clusterpb.Kind_KIND_USER
			}
			owner := cluster.Owner(n.cl.View().Placement(), cluster.ScopeKey(kind, sc.ID))
			if owner == "" || owner == n.cl.Name() {
				return
			}
			args, _ := json.Marshal(actors.ScopeArgs{Kind: kind, ID: sc.ID})
			done := make(chan *clusterpb.Reply, 1)
			// A pull may take longer than any request may wait (a large
			// scope moves in many chunks): it then fails here as timed out,
			// but the owner's locate goes on, and the next round's pull of
			// the scope waits for that locate instead of starting another.
			n.cl.RequestNode(owner, &clusterpb.Request{Kind: clusterpb.Kind_KIND_NODE, Target: owner, Op: actors.OpPull, Args: args},
				n.cl.RequestTimeout(), func(r *clusterpb.Reply) { done <- r })
			select {
			case r := <-done:
				if r.Error != nil {
					n.log.Debug("pull refused", "scope", sc, "owner", owner, "err", r.Error.Message)
					return
				}
				// The owner serves the scope now: a copy left here (released)
				// is stale; drop it.
				if st, err := n.store.State(sc); err == nil && st.Released && st.HasData {
					n.store.Drop(sc, func(error) {})
				}
			case <-ctx.Done():
			}
		})
	}
	wg.Wait()
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
