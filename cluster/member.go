package cluster

import (
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// Role is what a node does.
type Role string

// Roles.
const (
	RoleGateway Role = "gateway" // terminates client WebSockets
	RoleHost    Role = "host"    // hosts channel and user actors
)

// State is a member's state as this node sees it.
type State string

// Member states.
const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect"
	StateDead    State = "dead"
	StateLeft    State = "left"
)

// ProtocolVersion is this build's cluster protocol version.
const ProtocolVersion = clusterpb.Version

// Meta is what a node gossips about itself.
type Meta struct {
	Roles []Role `json:"roles"`
	// Remote is the protoactor remote address other nodes send to.
	Remote string `json:"remote"`
	// HTTP is the node's client-facing address (WebSocket, HTTP API).
	HTTP string `json:"http,omitempty"`
	// HTTPTLS says HTTP, and Admin when there is one, serve TLS
	// (https://, wss://) with the same certificate. Nodes that came before
	// it was gossiped leave it out: plain HTTP, as they assumed.
	HTTPTLS bool `json:"http_tls,omitempty"`
	// Admin is the node's separate operator address (--admin-listen),
	// where its operator endpoints are instead of on HTTP.
	// Absent: they are on HTTP (or the node came before it was gossiped).
	Admin   string `json:"admin,omitempty"`
	Version int    `json:"version"`
	// Draining is set while the node hands its scopes off before leaving.
	Draining bool `json:"draining,omitempty"`
	// DiskFull is set while the node's store refuses writes because its
	// disk is full: it keeps its replicas, but leads no shard.
	DiskFull bool `json:"disk_full,omitempty"`
	// DiskSlow is set while the node's disk is slow (its fsyncs): it
	// keeps its replicas, but leads no shard while others can.
	DiskSlow bool `json:"disk_slow,omitempty"`
	// Incarnation identifies this life of the node (its start time).
	Incarnation int64 `json:"incarnation"`
	// Left is gossiped just before the node leaves for good, so that
	// observers can tell a departure from a death (memberlist's leave
	// callback does not say which it is).
	Left bool `json:"left,omitempty"`
	// Cluster and Shards are the cluster the node belongs to (its id, set
	// when the cluster formed) and its shard count; Store identifies the
	// node's data directory (a wiped node comes back with a new one). All
	// are unset while a new node has not learned them yet.
	Cluster string `json:"cluster,omitempty"`
	Shards  uint32 `json:"shards,omitempty"`
	Store   uint64 `json:"store,omitempty"`
}

func (m Meta) has(r Role) bool { return slices.Contains(m.Roles, r) }

// compatible reports whether the node speaks this build's cluster protocol
// version. A host known only from the registry (down since before this
// node started) has no version yet and counts as compatible.
func (m Meta) compatible() bool { return m.Version == 0 || m.Version == ProtocolVersion }

func (m Meta) encode() []byte {
	b, _ := json.Marshal(m)
	return b
}

func decodeMeta(b []byte) (Meta, bool) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil || m.Remote == "" {
		return Meta{}, false
	}
	return m, true
}

// Member is one node of the cluster.
type Member struct {
	Name   string    `json:"name"`
	Gossip string    `json:"address"` // memberlist address
	Meta   Meta      `json:"meta"`
	State  State     `json:"state"`
	Since  time.Time `json:"since"`
	// Returns counts the times this node saw the member come back alive,
	// in the same life, after it had declared it dead or left (a
	// partition healed, or a wrong declaration). Each return may have
	// cost the member what this node forgot of it meanwhile.
	Returns int `json:"-"`
}

// IsHost reports whether the member hosts actors.
func (m Member) IsHost() bool { return m.Meta.has(RoleHost) }

// IsGateway reports whether the member terminates sessions.
func (m Member) IsGateway() bool { return m.Meta.has(RoleGateway) }

// Compatible reports whether the member speaks this node's cluster
// protocol version (or has not said yet). Nothing is placed on a member
// that does not.
func (m Member) Compatible() bool { return m.Meta.compatible() }

// View is an immutable snapshot of the membership.
type View struct {
	members map[string]Member
	// placement are the hosts shard replicas are placed on: every host
	// not left, not draining, speaking this protocol version and of this
	// node's cluster. Dead hosts stay in placement (their replicas may come
	// back) until they are replaced after --replace-dead-after.
	placement []string
	byRemote  map[string]string // remote address → name
}

func newView(members map[string]Member) *View {
	return buildView(members, "")
}

// buildView builds a view; cluster is this node's cluster id ("" while it
// has none: then no host is placed on).
func buildView(members map[string]Member, cluster string) *View {
	v := &View{members: members, byRemote: make(map[string]string, len(members))}
	for name, m := range members {
		v.byRemote[m.Meta.Remote] = name
		if m.IsHost() && m.State != StateLeft && !m.Meta.Draining && m.Compatible() && cluster != "" && m.Meta.Cluster == cluster {
			v.placement = append(v.placement, name)
		}
	}
	sort.Strings(v.placement)
	return v
}

// Member returns one member.
func (v *View) Member(name string) (Member, bool) {
	m, ok := v.members[name]
	return m, ok
}

// ByRemote returns the member with a remote address.
func (v *View) ByRemote(addr string) (Member, bool) {
	name, ok := v.byRemote[addr]
	if !ok {
		return Member{}, false
	}
	return v.members[name], true
}

// Members returns every member, sorted by name.
func (v *View) Members() []Member {
	out := make([]Member, 0, len(v.members))
	for _, m := range v.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Placement returns the names scopes are placed on.
func (v *View) Placement() []string { return v.placement }

// Hosts returns every host not left.
func (v *View) Hosts() []string {
	var out []string
	for name, m := range v.members {
		if m.IsHost() && m.State != StateLeft {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
