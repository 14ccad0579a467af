package cluster

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Rejoining. memberlist never contacts a member again once it has declared
// it dead, and a node whose seeds do not answer when it starts runs alone:
// left to itself, a seed restarted without --join, a node started while
// its seed was down, or the two sides of a healed partition would stay
// apart for good. So a node joins, at start-up and then in the background
// until they answer:
//
//   - every node its registry knows (it is saved on hosts' disks) that is
//     not a member in memberlist's eyes now, has not left and is not this
//     node, at the gossip address it was last seen at;
//   - the --join seeds, while this node sees no other member.
//
// Each address is retried with its own backoff (rejoinMin doubling up to
// rejoinMax, with jitter); an address just reached is left alone for
// rejoinMax, so a member that joins and drops out again (a half-open
// network) does not flap at every tick.

// maxJoinsPerRound bounds the joins one round runs at once (each may wait
// out memberlist's TCP timeout on an address that does not answer).
const maxJoinsPerRound = 8

// retryState is the backoff of one address being rejoined.
type retryState struct {
	fails int
	next  time.Time
}

// rejoinIntervals returns the backoff bounds of a failure-detection preset.
func rejoinIntervals(d Detection) (lo, hi time.Duration) {
	if d == DetectionFast {
		return 250 * time.Millisecond, 2 * time.Second
	}
	return time.Second, 30 * time.Second
}

// joinTargets returns the gossip addresses to join: registered nodes that
// memberlist does not list, and the seeds while this node is alone.
// Addresses of listed members (this node included) are never targets.
func (c *Cluster) joinTargets() []string {
	members := c.ml.Members()
	listed := make(map[string]bool, len(members))
	seen := map[string]bool{c.GossipAddress(): true}
	c.mu.Lock()
	for _, n := range members {
		// Only a listed node's name may be read here (see refreshLoop).
		listed[n.Name] = true
		if l, ok := c.live[n.Name]; ok {
			seen[l.gossip] = true
		}
	}
	c.mu.Unlock()
	var out []string
	add := func(addr string) {
		if addr != "" && !seen[addr] {
			seen[addr] = true
			out = append(out, addr)
		}
	}
	if len(members) <= 1 {
		for _, s := range c.cfg.Join {
			add(s)
		}
	}
	recs := c.reg.all()
	slices.SortFunc(recs, func(a, b HostRecord) int { return cmp.Compare(a.Name, b.Name) })
	for _, rec := range recs {
		if rec.Name != c.cfg.Name && !rec.Left && !listed[rec.Name] {
			add(rec.Gossip)
		}
	}
	return out
}

// joinFailure is an address that failed for the first time since it was
// last reached, and why.
type joinFailure struct {
	addr string
	err  error
}

// logAttrs names the address, the error and, when the member refused
// this node (keys or cluster name differ), says so.
func (f joinFailure) logAttrs() []any {
	attrs := []any{"address", f.addr, "err", f.err}
	if h := joinHint(f.err); h != "" {
		attrs = append(attrs, "hint", h)
	}
	return attrs
}

// joinRound joins the targets whose backoff has passed, up to
// maxJoinsPerRound of them at once, and returns the addresses reached and
// those that failed for the first time since they were last reached.
func (c *Cluster) joinRound(now time.Time) (reached []string, lost []joinFailure) {
	c.mu.Lock()
	left := c.meta.Left
	c.mu.Unlock()
	if left {
		return nil, nil // a node that left for good stays out
	}
	targets := c.joinTargets()
	for addr, r := range c.retry {
		if !slices.Contains(targets, addr) && now.After(r.next) {
			delete(c.retry, addr)
		}
	}
	var due []string
	for _, addr := range targets {
		if r := c.retry[addr]; r == nil || !now.Before(r.next) {
			due = append(due, addr)
		}
	}
	if len(due) > maxJoinsPerRound {
		due = due[:maxJoinsPerRound]
	}
	errs := make([]error, len(due))
	var wg sync.WaitGroup
	for i, addr := range due {
		wg.Go(func() {
			_, errs[i] = c.ml.Join([]string{addr})
		})
	}
	wg.Wait()
	for i, addr := range due {
		r := c.retry[addr]
		if r == nil {
			r = &retryState{}
			c.retry[addr] = r
		}
		if errs[i] == nil {
			c.joinOK.Add(1)
			c.joined.Store(true)
			r.fails, r.next = 0, now.Add(c.rejoinMax)
			reached = append(reached, addr)
			continue
		}
		c.joinFailed.Add(1)
		r.fails++
		r.next = now.Add(c.backoff(r.fails))
		if r.fails == 1 {
			lost = append(lost, joinFailure{addr, errs[i]})
		}
	}
	return reached, lost
}

// backoff is the wait after the n-th failure in a row: rejoinMin doubling
// up to rejoinMax, ±20 %.
func (c *Cluster) backoff(n int) time.Duration {
	d := c.rejoinMax
	if n <= 16 {
		d = min(c.rejoinMin<<(n-1), c.rejoinMax)
	}
	return d*4/5 + rand.N(d*2/5)
}

// joinAtStart is the first round, run before New returns.
func (c *Cluster) joinAtStart() {
	seeds := false
	for _, s := range c.cfg.Join {
		seeds = seeds || s != c.GossipAddress()
	}
	c.joined.Store(!seeds)
	reached, lost := c.joinRound(time.Now())
	switch {
	case seeds && len(reached) == 0:
		c.log.Warn("no seed or former member answered; running alone and retrying in the background", "seeds", c.cfg.Join)
	case len(lost) > 0:
		c.log.Info("joined; some former members do not answer and are retried in the background", "reached", reached)
	case len(reached) > 0:
		c.log.Info("joined", "reached", reached)
	}
	for _, f := range lost {
		c.log.Warn("could not join; retrying in the background", f.logAttrs()...)
	}
}

// rejoinLoop retries joins until the cluster closes. Close waits for a
// round in progress: at worst memberlist's TCP timeout (10 s with lan
// detection, 1 s with fast) when an address swallows connections.
func (c *Cluster) rejoinLoop() {
	t := time.NewTicker(c.rejoinMin)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			reached, lost := c.joinRound(now)
			for _, f := range lost {
				c.log.Info("a former member or seed does not answer; retrying in the background", append(f.logAttrs(), "max_interval", c.rejoinMax)...)
			}
			for _, addr := range reached {
				c.log.Info("rejoined a former member or seed", "address", addr)
			}
		}
	}
}

// Joined reports whether this node has reached the cluster: it was started
// without seeds, a join has succeeded, or another member has appeared.
func (c *Cluster) Joined() bool { return c.joined.Load() }

// JoinAttempts returns how many gossip joins (at start-up and in the
// background) reached their address and how many failed.
func (c *Cluster) JoinAttempts() (ok, failed uint64) { return c.joinOK.Load(), c.joinFailed.Load() }
