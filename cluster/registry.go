package cluster

import (
	"encoding/json"
	"sort"
	"sync"
)

// The registry is the set of every host this node knows of, including
// hosts that are down. It decides placement and who must be asked before a
// scope is activated without local data:
//
//   - A host that dies stays in placement (stage 1: its scopes' data is on
//     its disk). Its scopes answer unavailable until it returns.
//   - A host that left after draining (or that an operator forgot) is out:
//     it released everything it held.
//
// Every node keeps the registry on disk and merges it with the others' on
// memberlist's push/pull, so a node that joins late still learns of hosts
// that are down, and a whole cluster restarted node by node keeps its
// placement.

// HostRecord is what the registry keeps of one host.
type HostRecord struct {
	Name string `json:"name"`
	// Incarnation identifies one life of the host (its start time); a
	// later incarnation supersedes everything said of an earlier one.
	Incarnation int64  `json:"incarnation"`
	Left        bool   `json:"left,omitempty"`
	Remote      string `json:"remote,omitempty"`
	Gossip      string `json:"gossip,omitempty"`
	Roles       []Role `json:"roles,omitempty"`
}

// newer reports whether r supersedes cur: a later incarnation, or the same
// incarnation now left.
func (r HostRecord) newer(cur HostRecord) bool {
	if r.Incarnation != cur.Incarnation {
		return r.Incarnation > cur.Incarnation
	}
	return r.Left && !cur.Left
}

// RegistryStore keeps the registry on disk.
type RegistryStore interface {
	LoadRegistry() ([]byte, error)
	SaveRegistry([]byte) error
}

type registry struct {
	mu    sync.Mutex // guards hosts; never held while saving
	hosts map[string]HostRecord
	store RegistryStore
	// dirty wakes the saver: changes are saved by one goroutine, newest
	// last, and never inside memberlist's callbacks (which hold its lock).
	dirty chan struct{}
}

func newRegistry(store RegistryStore) (*registry, error) {
	r := &registry{hosts: make(map[string]HostRecord), store: store, dirty: make(chan struct{}, 1)}
	if store == nil {
		return r, nil
	}
	b, err := store.LoadRegistry()
	if err != nil || len(b) == 0 {
		return r, err
	}
	var recs []HostRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, err
	}
	for _, rec := range recs {
		r.hosts[rec.Name] = rec
	}
	return r, nil
}

// merge takes the records that supersede what the registry holds and
// reports whether anything changed (and was saved).
func (r *registry) merge(recs ...HostRecord) bool {
	r.mu.Lock()
	changed := false
	for _, rec := range recs {
		if rec.Name == "" {
			continue
		}
		cur, ok := r.hosts[rec.Name]
		if !ok || rec.newer(cur) || (rec.Incarnation == cur.Incarnation && rec.Left == cur.Left && !sameAddrs(rec, cur)) {
			r.hosts[rec.Name] = rec
			changed = true
		}
	}
	r.mu.Unlock()
	if changed && r.store != nil {
		select {
		case r.dirty <- struct{}{}:
		default: // a save is pending; it will take this change too
		}
	}
	return changed
}

// saveLoop writes the registry after changes until stop closes, then once
// more.
func (r *registry) saveLoop(stop <-chan struct{}, log func(error)) {
	if r.store == nil {
		return
	}
	save := func() {
		if err := r.store.SaveRegistry(r.encode()); err != nil {
			log(err)
		}
	}
	for {
		select {
		case <-r.dirty:
			save()
		case <-stop:
			select {
			case <-r.dirty:
				save()
			default:
			}
			return
		}
	}
}

func sameAddrs(a, b HostRecord) bool {
	return a.Remote == b.Remote && a.Gossip == b.Gossip
}

func (r *registry) encodeLocked() []byte {
	recs := make([]HostRecord, 0, len(r.hosts))
	for _, h := range r.hosts {
		recs = append(recs, h)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	b, _ := json.Marshal(recs)
	return b
}

// encode returns the registry for push/pull.
func (r *registry) encode() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.encodeLocked()
}

// all returns every record.
func (r *registry) all() []HostRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]HostRecord, 0, len(r.hosts))
	for _, h := range r.hosts {
		out = append(out, h)
	}
	return out
}

func decodeRecords(b []byte) []HostRecord {
	var recs []HostRecord
	if json.Unmarshal(b, &recs) != nil {
		return nil
	}
	return recs
}
