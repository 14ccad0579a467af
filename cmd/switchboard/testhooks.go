//go:build testhooks

package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// testHooks is fault injection for tests. It exists in builds with the
// testhooks tag only: proc_test.go builds the node binary it runs with
// it; the production binary has neither these fields nor their flags.
type testHooks struct {
	// ClaimChannels: this node believes it owns these channels whatever
	// placement says, as a node with a partitioned membership view would.
	ClaimChannels []string
	// WebhookTiming: the webhook's timeout, first and longest backoff,
	// shortened so a test sees failures and retries in seconds.
	WebhookTiming string
}

// testHookFlags defines the hooks' flags on fs; call the function it
// returns once fs is parsed.
func testHookFlags(fs *flag.FlagSet, h *testHooks) func() {
	claim := fs.String("test-claim-channels", "", "FAULT INJECTION, test builds only: this node believes it owns these channels whatever placement says")
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
