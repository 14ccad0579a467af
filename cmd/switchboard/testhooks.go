//go:build testhooks

package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/shard"
)

// testHooks is fault injection for tests. It exists in builds with the
// testhooks tag only: proc_test.go builds the node binary it runs with
// it; the production binary has neither these fields nor their flags.
type testHooks struct {
	// ClaimChannels: this node believes it leads these channels' shards
	// whatever Raft says, as a deposed leader that has not yet heard of
	// its successor would: its gateway sends their requests to its own
	// host, which activates them in the term its replica knows.
	ClaimChannels []string
	// WebhookTiming: the webhook's timeout, first and longest backoff,
	// shortened so a test sees failures and retries in seconds.
	WebhookTiming string
}

// testHookFlags defines the hooks' flags on fs; call the function it
// returns once fs is parsed.
func testHookFlags(fs *flag.FlagSet, h *testHooks) func() {
	claim := fs.String("test-claim-channels", "", "FAULT INJECTION, test builds only: this node believes it leads these channels' shards whatever Raft says")
	fs.StringVar(&h.WebhookTiming, "test-webhook-timing", "", "FAULT INJECTION, test builds only: webhook timeout,min-backoff,max-backoff (e.g. 300ms,50ms,200ms)")
	return func() { h.ClaimChannels = splitList(*claim) }
}

// webhook sets the webhook's timing (checked by the node).
func (h testHooks) webhook(c *WebhookConfig) error { return parseWebhookTiming(h.WebhookTiming, c) }

// apply sets the hooks in the node's cluster config.
func (h testHooks) apply(cfg *cluster.Config) {
	var keys []string
	for _, ch := range h.ClaimChannels {
		keys = append(keys, cluster.ScopeKey(clusterpb.Kind_KIND_CHANNEL, ch))
	}
	cluster.ClaimScopes(cfg, keys)
}

// replication gives the host a view of r in which this node leads the
// claimed channels' shards.
func (h testHooks) replication(r actors.Replication, cl *cluster.Cluster) actors.Replication {
	if len(h.ClaimChannels) == 0 {
		return r
	}
	return claiming{Replication: r, cl: cl, channels: h.ClaimChannels}
}

// claiming answers Status and Lead for the claimed shards as if this node
// led them, in its replica's current term; proposals and reads still go
// to the engine, which must refuse them.
type claiming struct {
	actors.Replication
	cl       *cluster.Cluster
	channels []string
}

// claimed reports whether sh holds a claimed channel (asked once the
// node knows its shard count: activations wait for it).
func (c claiming) claimed(sh uint32) bool {
	for _, ch := range c.channels {
		if c.cl.ShardOf(clusterpb.Kind_KIND_CHANNEL, ch) == sh {
			return true
		}
	}
	return false
}

func (c claiming) Status(sh uint32) (shard.Status, bool) {
	st, ok := c.Replication.Status(sh)
	if c.claimed(sh) {
		st.IsLeader = true
	}
	return st, ok
}

func (c claiming) Lead(sh uint32, scope string, done func(s *shard.Stream, err error)) {
	if !c.claimed(sh) {
		c.Replication.Lead(sh, scope, done)
		return
	}
	st, _ := c.Replication.Status(sh)
	done(shard.NewStream(sh, st.Term, scope), nil)
}

// parseWebhookTiming reads --test-webhook-timing.
func parseWebhookTiming(v string, c *WebhookConfig) error {
	if v == "" {
		return nil
	}
	parts := splitList(v)
	if len(parts) != 3 {
		return errors.New("--test-webhook-timing: timeout,min-backoff,max-backoff")
	}
	var ds [3]time.Duration
	for i, p := range parts {
		d, err := time.ParseDuration(p)
		if err != nil || d <= 0 {
			return fmt.Errorf("--test-webhook-timing: %q is not a duration", p)
		}
		ds[i] = d
	}
	c.Timeout, c.MinBackoff, c.MaxBackoff = ds[0], ds[1], ds[2]
	return nil
}
