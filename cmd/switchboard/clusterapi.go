package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The cluster's operator endpoints (operator.go guards them;
// docs/operations.md documents every field): GET /v1/cluster, GET
// /v1/cluster/locate and POST /v1/cluster/forget.

// shardView is one shard in /v1/cluster.
type shardView struct {
	ID       uint32        `json:"id"`
	Leader   string        `json:"leader"`
	Term     uint64        `json:"term"`
	Applied  uint64        `json:"applied"`
	Replicas []replicaView `json:"replicas"`
}

type replicaView struct {
	Node string `json:"node"`
	ID   uint64 `json:"id"`
	// Role is voter, learner (being added, catching up) or outgoing (a
	// voter being removed in a joint change).
	Role string `json:"role"`
	// State is the leader's view of the replica: replicate (caught up and
	// following), probe (being brought back in line), snapshot (receiving
	// a snapshot), or down (its node is not alive).
	State string `json:"state,omitempty"`
	Match uint64 `json:"match,omitempty"`
}

// clusterInfo serves GET /v1/cluster: every member this node knows of,
// with its roles, state and (for alive hosts) active actor counts, and
// every shard with its leader and replicas.
func (n *Node) clusterInfo(w http.ResponseWriter, r *http.Request) {
	type member struct {
		Name     string         `json:"name"`
		Address  string         `json:"address"`
		HTTP     string         `json:"http,omitempty"`
		HTTPTLS  bool           `json:"http_tls,omitempty"`
		Admin    string         `json:"admin,omitempty"`
		Remote   string         `json:"remote"`
		Roles    []cluster.Role `json:"roles"`
		State    cluster.State  `json:"state"`
		Draining bool           `json:"draining,omitempty"`
		DiskFull bool           `json:"disk_full,omitempty"`
		DiskSlow bool           `json:"disk_slow,omitempty"`
		Channels *int           `json:"channels"`
		Users    *int           `json:"users,omitempty"`
		Replicas int            `json:"replicas"`
		Leads    int            `json:"leads"`
		Since    *protocol.Time `json:"since,omitempty"`
		Self     bool           `json:"self,omitempty"`
	}
	var out struct {
		Node       string      `json:"node"`
		Cluster    string      `json:"cluster,omitempty"`
		ShardCount uint32      `json:"shard_count"`
		Members    []member    `json:"members"`
		Placement  []string    `json:"placement"`
		Shards     []shardView `json:"shards"`
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	stats := n.nodeStats(ctx)
	v := n.cl.View()
	out.Node = n.cl.Name()
	out.Cluster, out.ShardCount = n.cl.Identity()
	out.Placement = v.Placement()
	replicas, leads := map[string]int{}, map[string]int{}
	for _, si := range n.cl.Shards() {
		sv := n.shardView(v, si)
		out.Shards = append(out.Shards, sv)
		leads[sv.Leader]++
		for _, rp := range sv.Replicas {
			replicas[rp.Node]++
		}
	}
	for _, m := range v.Members() {
		mm := member{Name: m.Name, Address: m.Gossip, HTTP: m.Meta.HTTP, HTTPTLS: m.Meta.HTTPTLS, Admin: m.Meta.Admin, Remote: m.Meta.Remote, Roles: m.Meta.Roles,
			State: m.State, Draining: m.Meta.Draining, DiskFull: m.Meta.DiskFull, DiskSlow: m.Meta.DiskSlow, Self: m.Name == n.cl.Name(), Replicas: replicas[m.Name], Leads: leads[m.Name]}
		if s := stats[m.Name]; s != nil {
			mm.Channels, mm.Users = &s.Channels, &s.Users
		}
		if !m.Since.IsZero() {
			since := protocol.At(m.Since)
			mm.Since = &since
		}
		out.Members = append(out.Members, mm)
	}
	writeJSON(w, http.StatusOK, out)
}

// shardView describes a shard as this node knows it: a leader that is
// down in this node's view is shown as none.
func (n *Node) shardView(v *cluster.View, si cluster.ShardInfo) shardView {
	sv := shardView{ID: si.Shard, Term: si.Term, Applied: si.Applied, Replicas: []replicaView{}}
	if m, ok := v.Member(si.Leader); ok && m.State != cluster.StateDead && m.State != cluster.StateLeft {
		sv.Leader = si.Leader
	}
	for _, rp := range si.Replicas {
		rv := replicaView{Node: rp.Node, ID: rp.ID, Role: rp.Role, State: rp.State, Match: rp.Match}
		if m, ok := v.Member(rp.Node); !ok || m.State == cluster.StateDead || m.State == cluster.StateLeft {
			rv.State = "down"
		}
		sv.Replicas = append(sv.Replicas, rv)
	}
	return sv
}

// locate serves GET /v1/cluster/locate?channel=ID (or user=ID): the shard
// the scope lives in, its leader and its replicas, by node name.
func (n *Node) locate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, id := clusterpb.Kind_KIND_CHANNEL, q.Get("channel")
	if u := q.Get("user"); u != "" && id == "" {
		kind, id = clusterpb.Kind_KIND_USER, u
	}
	_, count := n.cl.Identity()
	switch {
	case id == "" || len(id) > protocol.DefaultLimits().MaxIDLen:
		operatorError(w, http.StatusBadRequest, protocol.CodeBadRequest, "give channel=ID or user=ID")
		return
	case count == 0:
		operatorError(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, "this node does not know its cluster yet")
		return
	}
	sh := n.cl.ShardOf(kind, id)
	si, _ := n.cl.Shard(sh)
	sv := n.shardView(n.cl.View(), si)
	out := struct {
		Shard    uint32   `json:"shard"`
		Leader   string   `json:"leader"`
		Term     uint64   `json:"term"`
		Replicas []string `json:"replicas"`
		Learners []string `json:"learners,omitempty"`
	}{Shard: sh, Leader: sv.Leader, Term: sv.Term, Replicas: []string{}}
	for _, rp := range sv.Replicas {
		if rp.Role == "learner" {
			out.Learners = append(out.Learners, rp.Node)
		} else {
			out.Replicas = append(out.Replicas, rp.Node)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// forget serves POST /v1/cluster/forget?node=NAME: a dead host leaves
// placement for good; its replicas are re-created on other hosts at once.
func (n *Node) forget(w http.ResponseWriter, r *http.Request) {
	if err := n.cl.Forget(r.URL.Query().Get("node")); err != nil {
		operatorError(w, http.StatusBadRequest, protocol.CodeBadRequest, err.Error())
		return
	}
	n.feedHosts()
	writeJSON(w, http.StatusOK, struct{}{})
}

// partitionHandler serves /v1/cluster/partition (--fault-injection): GET says
// which nodes this node is cut off from, PUT ?nodes=a,b cuts it off from
// those too (the caller tells their side the same, for a partition both
// ways), DELETE heals every cut. Each answers {"cut": [names]}.
func (n *Node) partitionHandler(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPut:
		names := splitList(r.URL.Query().Get("nodes"))
		if len(names) == 0 {
			operatorError(w, http.StatusBadRequest, protocol.CodeBadRequest, "give nodes=NAME[,NAME...]")
			return
		}
		if err := n.partition.Cut(n.cl.View(), n.cl.Name(), names); err != nil {
			operatorError(w, http.StatusBadRequest, protocol.CodeBadRequest, err.Error())
			return
		}
	case http.MethodDelete:
		n.partition.Heal()
	}
	writeJSON(w, http.StatusOK, map[string][]string{"cut": n.partition.Nodes()})
}

// lagHandler serves /v1/cluster/lag (--fault-injection): GET says which
// nodes this node's links to are slow, PUT ?nodes=a,b&delay=D[&jitter=J]
// [&loss=F] slows them (the caller tells their side the same, so that
// each direction is slowed once), DELETE ends every lag. Each answers
// {"lag": [{node, delay_ms, jitter_ms, loss}]}.
func (n *Node) lagHandler(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPut:
		q := r.URL.Query()
		names := splitList(q.Get("nodes"))
		lag, err := parseLag(q)
		if err == nil && len(names) == 0 {
			err = errors.New("give nodes=NAME[,NAME...]")
		}
		if err == nil {
			err = n.partition.SetLag(n.cl.View(), n.cl.Name(), names, lag)
		}
		if err != nil {
			operatorError(w, http.StatusBadRequest, protocol.CodeBadRequest, err.Error())
			return
		}
		n.log.Warn("fault injection: links slowed", "nodes", names, "delay", lag.Delay, "jitter", lag.Jitter, "loss", lag.Loss)
	case http.MethodDelete:
		n.partition.EndLag()
	}
	type nodeLag struct {
		Node     string  `json:"node"`
		DelayMS  float64 `json:"delay_ms"`
		JitterMS float64 `json:"jitter_ms"`
		Loss     float64 `json:"loss"`
	}
	out := []nodeLag{}
	for _, l := range n.partition.Lags() {
		out = append(out, nodeLag{l.Node, l.Delay.Seconds() * 1000, l.Jitter.Seconds() * 1000, l.Loss})
	}
	writeJSON(w, http.StatusOK, map[string][]nodeLag{"lag": out})
}

// parseLag reads a lag's delay (required), jitter and loss.
func parseLag(q url.Values) (cluster.Lag, error) {
	var l cluster.Lag
	var err error
	if l.Delay, err = time.ParseDuration(q.Get("delay")); err != nil {
		return l, fmt.Errorf("give delay=DURATION (such as 150ms): %w", err)
	}
	if s := q.Get("jitter"); s != "" {
		if l.Jitter, err = time.ParseDuration(s); err != nil {
			return l, fmt.Errorf("jitter: %w", err)
		}
	}
	if s := q.Get("loss"); s != "" {
		if l.Loss, err = strconv.ParseFloat(s, 64); err != nil {
			return l, fmt.Errorf("loss: %w", err)
		}
	}
	return l, l.Check()
}

// hasStore reports whether this node has a store; if not, it answers 400.
func (n *Node) hasStore(w http.ResponseWriter) bool {
	if n.store == nil {
		operatorError(w, http.StatusBadRequest, protocol.CodeBadRequest, "this node has no store (it is a gateway only)")
	}
	return n.store != nil
}

// maxSyncDelay bounds what /v1/cluster/disk-slow adds to a sync.
const maxSyncDelay = 10 * time.Second

// diskSlowHandler serves /v1/cluster/disk-slow (--fault-injection): PUT
// ?delay=D makes every sync of this node's store take D longer, as on a
// slow or overloaded disk; DELETE makes them as fast as the disk is; GET
// says which it is. Each answers {"sync_delay_ms": ms}.
func (n *Node) diskSlowHandler(w http.ResponseWriter, r *http.Request) {
	if !n.hasStore(w) {
		return
	}
	switch r.Method {
	case http.MethodPut:
		d, err := time.ParseDuration(r.URL.Query().Get("delay"))
		if err != nil || d <= 0 || d > maxSyncDelay {
			operatorError(w, http.StatusBadRequest, protocol.CodeBadRequest, fmt.Sprintf("give delay=DURATION, more than 0 and at most %s (such as 200ms)", maxSyncDelay))
			return
		}
		n.store.SlowSyncs(d)
		n.log.Warn("fault injection: the store's syncs are slowed", "delay", d)
	case http.MethodDelete:
		if n.store.SyncDelay() > 0 {
			n.store.SlowSyncs(0)
			n.log.Warn("fault injection: the store's syncs are as fast as the disk again")
		}
	}
	writeJSON(w, http.StatusOK, map[string]float64{"sync_delay_ms": n.store.SyncDelay().Seconds() * 1000})
}

// diskStallHandler serves /v1/cluster/disk-stall (--fault-injection): PUT
// makes every write and sync of this node's store block, as on a disk
// that stops answering; DELETE lets them run again; GET says which it is.
// Each answers {"stalled": bool}.
func (n *Node) diskStallHandler(w http.ResponseWriter, r *http.Request) {
	if !n.hasStore(w) {
		return
	}
	switch r.Method {
	case http.MethodPut:
		if n.store.StallWrites() {
			n.log.Warn("fault injection: the store's writes are stalled")
		}
	case http.MethodDelete:
		if n.store.ResumeWrites() {
			n.log.Warn("fault injection: the store's writes run again")
		}
	}
	writeJSON(w, http.StatusOK, map[string]bool{"stalled": n.store.WritesStalled()})
}
