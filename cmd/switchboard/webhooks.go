package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/actors/webhook"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// WebhookConfig is the node's webhook (see serve's --webhook-* flags).
type WebhookConfig struct {
	URL    string
	Secret string
	// Events are the event names delivered (nil: all).
	Events []string
	// Timeout, MinBackoff and MaxBackoff override the deliverer's
	// (tests; zero: 5 s, 1 s, 1 min).
	Timeout, MinBackoff, MaxBackoff time.Duration
}

// check validates the webhook flags.
func (c *WebhookConfig) check() error {
	if c.URL == "" {
		if c.Secret != "" || c.Events != nil {
			return errors.New("--webhook-secret and --webhook-events need --webhook-url")
		}
		return nil
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--webhook-url %q: an http or https URL is needed", c.URL)
	}
	if c.Secret == "" {
		return errors.New("--webhook-url needs --webhook-secret: receivers check the signature of every batch")
	}
	for _, e := range c.Events {
		if !webhookEvent(e) {
			return fmt.Errorf("--webhook-events: %q is not a persisted event (%s)", e, strings.Join(webhookEvents, ", "))
		}
	}
	return nil
}

// webhookEvents are the events a webhook can deliver: the persisted ones.
var webhookEvents = []string{protocol.EventMessageNew, protocol.EventMessageUpdated, protocol.EventMessageDeleted,
	protocol.EventReactionUpdated, protocol.EventMemberJoined, protocol.EventMemberLeft, protocol.EventMemberUpdated,
	protocol.EventMemberKicked, protocol.EventChannelUpdated, protocol.EventChannelDeleted}

func webhookEvent(name string) bool {
	for _, e := range webhookEvents {
		if e == name {
			return true
		}
	}
	return false
}

// webhooks is a node's webhook delivery: the deliverer, and the search
// of each shard this node comes to lead for channels with events left to
// deliver.
type webhooks struct {
	d      *webhook.Deliverer
	led    chan ledShard // shards this node started leading, to scan
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ledShard is a shard this node leads in a term.
type ledShard struct {
	shard uint32
	term  uint64
}

// newWebhooks starts delivery on a host node.
func newWebhooks(cfg WebhookConfig, cl *cluster.Cluster, m *metrics, base webhook.Config) *webhooks {
	dc := base
	dc.URL, dc.Secret, dc.Events = cfg.URL, cfg.Secret, cfg.Events
	dc.Timeout, dc.MinBackoff, dc.MaxBackoff = cfg.Timeout, cfg.MinBackoff, cfg.MaxBackoff
	dc.Metrics = m.webhookHooks()
	w := &webhooks{d: webhook.New(dc, actors.ClusterSource{Cluster: cl}), led: make(chan ledShard, 1024)}
	m.watchWebhooks(w.d)
	return w
}

// start scans, in the background, each shard this node starts leading
// (see leads) for channels with events to deliver; close ends it.
func (w *webhooks) start(store *persistence.Store, cl *cluster.Cluster, log func(error)) {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Go(func() {
		scanned := make(map[uint32]uint64) // shard → term scanned in
		for {
			select {
			case <-ctx.Done():
				return
			case l := <-w.led:
				if scanned[l.shard] == l.term {
					continue
				}
				scanned[l.shard] = l.term
				if err := actors.WakeWebhookBacklog(ctx, store, cl, l.shard); err != nil && ctx.Err() == nil {
					log(err)
				}
			}
		}
	})
}

// leads tells the scan this node leads shard in term. It never blocks:
// past the queue's bound the shard is scanned at its next leadership.
func (w *webhooks) leads(shard uint32, term uint64) {
	if w == nil {
		return
	}
	select {
	case w.led <- ledShard{shard, term}:
	default:
	}
}

func (w *webhooks) close() {
	if w == nil {
		return
	}
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
	w.d.Close()
}

// webhookHooks feeds the webhook metrics.
func (m *metrics) webhookHooks() *webhook.Metrics {
	return &webhook.Metrics{
		Delivery: func(r string, d time.Duration) {
			r = bounded(r, webhookResults)
			m.webhookDeliveries.WithLabelValues(r).Inc()
			m.webhookLatency.Observe(d.Seconds())
		},
		Gap: func(lost uint64) {
			m.webhookGaps.Inc()
			m.webhookLost.Add(float64(lost))
		},
	}
}

var webhookResults = set("ok", "failed", "timeout", "error")

// watchWebhooks exports the deliverer's backlog.
func (m *metrics) watchWebhooks(d *webhook.Deliverer) { m.webhooks.Store(d) }
