package shard

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
)

// MemNetwork connects engines in one process, for tests. By default
// batches wait in a queue until Deliver hands them over, so a test decides
// when messages arrive; with Auto set they are handed over at once (for
// engines running their own loops). Links can be cut in either direction
// and batches dropped at random, from a seeded generator.
type MemNetwork struct {
	mu      sync.Mutex // guards the fields below
	engines map[string]*Engine
	queue   []memBatch
	cut     map[[2]string]bool
	drop    float64
	dup     float64
	rng     *rand.Rand
	auto    bool
}

type memBatch struct {
	from, to string
	b        *Batch
}

// NewMemNetwork returns an empty network whose random drops follow seed.
func NewMemNetwork(seed uint64) *MemNetwork {
	return &MemNetwork{engines: make(map[string]*Engine), cut: make(map[[2]string]bool), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// SetAuto makes Send deliver at once.
func (n *MemNetwork) SetAuto(on bool) {
	n.mu.Lock()
	n.auto = on
	n.mu.Unlock()
}

// Register attaches node's engine (replacing a previous one: a restart).
func (n *MemNetwork) Register(node string, e *Engine) {
	n.mu.Lock()
	n.engines[node] = e
	n.mu.Unlock()
}

// Unregister detaches node (it is down).
func (n *MemNetwork) Unregister(node string) {
	n.mu.Lock()
	delete(n.engines, node)
	n.mu.Unlock()
}

// Transport returns node's side of the network.
func (n *MemNetwork) Transport(node string) Transport { return &memTransport{n: n, from: node} }

// Cut drops everything sent from a to b (one direction).
func (n *MemNetwork) Cut(a, b string) { n.setCut(a, b, true) }

// Heal restores the link from a to b.
func (n *MemNetwork) Heal(a, b string) { n.setCut(a, b, false) }

func (n *MemNetwork) setCut(a, b string, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if on {
		n.cut[[2]string{a, b}] = true
	} else {
		delete(n.cut, [2]string{a, b})
	}
}

// Isolate cuts every link to and from node.
func (n *MemNetwork) Isolate(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for other := range n.engines {
		if other != node {
			n.cut[[2]string{node, other}] = true
			n.cut[[2]string{other, node}] = true
		}
	}
}

// HealAll restores every link.
func (n *MemNetwork) HealAll() {
	n.mu.Lock()
	clear(n.cut)
	n.mu.Unlock()
}

// SetDropRate drops each batch with probability p.
func (n *MemNetwork) SetDropRate(p float64) {
	n.mu.Lock()
	n.drop = p
	n.mu.Unlock()
}

// SetDuplicateRate delivers each batch twice with probability p.
func (n *MemNetwork) SetDuplicateRate(p float64) {
	n.mu.Lock()
	n.dup = p
	n.mu.Unlock()
}

// lost reports whether a batch from a to b is lost. n.mu is held.
func (n *MemNetwork) lost(a, b string) bool {
	return n.cut[[2]string{a, b}] || (n.drop > 0 && n.rng.Float64() < n.drop)
}

// Deliver hands every queued batch to its engine, in the order sent, and
// returns how many arrived.
func (n *MemNetwork) Deliver() int {
	n.mu.Lock()
	q := n.queue
	n.queue = nil
	var arrive []func()
	for _, m := range q {
		e := n.engines[m.to]
		if e == nil || n.lost(m.from, m.to) {
			continue
		}
		arrive = append(arrive, func() { e.Receive(m.b) })
		if n.dup > 0 && n.rng.Float64() < n.dup {
			arrive = append(arrive, func() { e.Receive(m.b) })
		}
	}
	n.mu.Unlock()
	for _, fn := range arrive {
		fn()
	}
	return len(arrive)
}

// Pending returns how many batches wait for Deliver.
func (n *MemNetwork) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.queue)
}

type memTransport struct {
	n    *MemNetwork
	from string
}

func (t *memTransport) Send(node string, b *Batch) bool {
	n := t.n
	n.mu.Lock()
	e := n.engines[node]
	if e == nil {
		n.mu.Unlock()
		return false
	}
	if !n.auto {
		n.queue = append(n.queue, memBatch{from: t.from, to: node, b: b})
		n.mu.Unlock()
		return true
	}
	lost := n.lost(t.from, node)
	n.mu.Unlock()
	if !lost {
		e.Receive(b)
	}
	return true
}

var errLinkDown = errors.New("shard: link down")

func (t *memTransport) SendSnapshotChunk(ctx context.Context, node string, c *SnapshotChunk) error {
	n := t.n
	n.mu.Lock()
	e := n.engines[node]
	down := e == nil || n.cut[[2]string{t.from, node}] || n.cut[[2]string{node, t.from}]
	n.mu.Unlock()
	if down {
		return errLinkDown
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return e.ReceiveSnapshotChunk(c)
}
