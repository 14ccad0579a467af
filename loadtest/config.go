// Package loadtest drives a Switchboard deployment with thousands of
// simulated sessions, measures what users would see with HDR histograms,
// checks that every acknowledged message reached every watcher exactly
// once and in order, and writes a report a person can read.
//
// Sends follow an open-loop schedule: each has an intended time fixed in
// advance by the seed, and every latency is measured from that intended
// time, so a stalled server shows up as latency instead of silently
// slowing the generator down (no coordinated omission).
package loadtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"time"
)

// Scenario names.
const (
	// ScenarioChat: many small rooms; every member watches its room and
	// members send to it.
	ScenarioChat = "chat"
	// ScenarioLiveroom: one live channel, every session a viewer, a few
	// senders.
	ScenarioLiveroom = "liveroom"
	// ScenarioStorm: chat, and halfway through every session drops its
	// connection at once and resumes by since_seq.
	ScenarioStorm = "storm"
	// ScenarioSoak: chat with history reads mixed in, for a long time,
	// sampling memory on both sides.
	ScenarioSoak = "soak"
)

// Phases reported to Config.OnPhase.
const (
	PhaseSending = "sending"
	PhaseDrained = "drained"
)

// Config is one load-test run. Zero fields take the defaults of
// DefaultConfig, except Rate, HistoryShare and ReactionShare, whose zero
// means none: start from DefaultConfig for their defaults.
type Config struct {
	// Targets are gateway WebSocket URLs (ws://host:port/v1/ws, or wss://
	// for nodes serving TLS); sessions are spread over them round-robin.
	Targets []string
	// TLS is used for wss:// targets and https:// metrics (nil: Go's
	// defaults, the system's CAs; client.LoadTLS trusts a test CA).
	TLS *tls.Config
	// Token, when set, returns a session token for a user; otherwise
	// sessions use development auth (connect {user_id}).
	Token func(user string) (string, error)
	// Scenario is chat, liveroom, storm or soak.
	Scenario string
	// Sessions is how many sessions to open.
	Sessions int
	// Channels is how many rooms (chat, storm, soak); liveroom has one.
	Channels int
	// Senders is how many sessions send in a liveroom.
	Senders int
	// Rate is operations (sends, and the history reads and reactions
	// that replace some of them) per second over the whole run (open
	// loop); 0 schedules none.
	Rate float64
	// Duration is how long sends are measured after the warmup.
	Duration time.Duration
	// Warmup is how long sends run before measurements start.
	Warmup time.Duration
	// Seed fixes the schedule: the same seed gives the same sends at the
	// same intended times from the same sessions to the same channels.
	Seed uint64
	// Ramp is connections opened per second (0: as fast as DialWorkers
	// allow).
	Ramp float64
	// MessageBytes is the length of each message's text.
	MessageBytes int
	// HistoryShare is the share of soak operations that read history
	// instead of sending.
	HistoryShare float64
	// ReactionShare is the share of liveroom operations that add a
	// reaction (any viewer, to the newest acknowledged message) instead
	// of sending.
	ReactionShare float64
	// RunID prefixes every channel and user id of the run, so runs against
	// the same deployment never share channels (default: random).
	RunID string
	// Drain bounds the wait for outstanding replies and deliveries after
	// the last send, and for the final checks.
	Drain time.Duration
	// DialWorkers bounds concurrent dials and joins.
	DialWorkers int
	// SendWorkers bounds goroutines that write sends; a session's sends
	// always go through the same worker, in schedule order.
	SendWorkers int
	// StallTimeout is the sessions' client.Options.StallTimeout: a
	// gateway silent that long is left for the next target (0: the
	// client's default; negative: never).
	StallTimeout time.Duration
	// Interval is the length of one time-series point and of the
	// progress line's period.
	Interval time.Duration
	// MemoryInterval is how often soak samples memory.
	MemoryInterval time.Duration
	// MetricsURLs are scraped for node memory during soak (default: the
	// targets' /metrics).
	MetricsURLs []string
	// APIKey, when set, is sent as the bearer credential of those
	// scrapes (a node with --api-key, or without one but with an auth
	// key, does not serve /metrics to strangers).
	APIKey string
	// Progress receives one line per Interval (nil: none).
	Progress io.Writer
	// OnPhase, when set, is called as the run enters each phase:
	// PhaseSending just before the first send, PhaseDrained once the
	// schedule ended and outstanding replies were awaited (before the
	// final checks). Benchmarks read the node's CPU time there.
	OnPhase func(phase string)
	// OnSend, when set, is called once for every scheduled send as it is
	// settled (acknowledged or not), from any goroutine; it must return
	// quickly. The chaos harness records acknowledgements with it.
	OnSend func(SendOutcome)
	Logger *slog.Logger
}

// DefaultConfig returns a small chat run against a local node.
func DefaultConfig() Config {
	return Config{
		Targets:        []string{"ws://127.0.0.1:8080/v1/ws"},
		Scenario:       ScenarioChat,
		Sessions:       100,
		Channels:       10,
		Senders:        10,
		Rate:           100,
		Duration:       30 * time.Second,
		Warmup:         5 * time.Second,
		Seed:           1,
		Ramp:           500,
		MessageBytes:   64,
		HistoryShare:   0.1,
		Drain:          15 * time.Second,
		DialWorkers:    64,
		SendWorkers:    16,
		Interval:       time.Second,
		MemoryInterval: 5 * time.Second,
	}
}

func (c *Config) withDefaults() {
	d := DefaultConfig()
	if len(c.Targets) == 0 {
		c.Targets = d.Targets
	}
	if c.Scenario == "" {
		c.Scenario = d.Scenario
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.Sessions, d.Sessions)
	setInt(&c.Channels, d.Channels)
	setInt(&c.Senders, d.Senders)
	setInt(&c.MessageBytes, d.MessageBytes)
	setInt(&c.DialWorkers, d.DialWorkers)
	setInt(&c.SendWorkers, d.SendWorkers)
	setDur(&c.Duration, d.Duration)
	setDur(&c.Drain, d.Drain)
	setDur(&c.Interval, d.Interval)
	setDur(&c.MemoryInterval, d.MemoryInterval)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the config as Run will use it (zero fields taking their
// defaults).
func (c Config) Validate() error {
	c.withDefaults()
	return c.validate()
}

// validate checks the config after defaults.
func (c *Config) validate() error {
	var errs []error
	switch c.Scenario {
	case ScenarioChat, ScenarioLiveroom, ScenarioStorm, ScenarioSoak:
	default:
		errs = append(errs, fmt.Errorf("scenario %q: want chat, liveroom, storm or soak", c.Scenario))
	}
	if c.Sessions < 1 {
		errs = append(errs, errors.New("sessions must be at least 1"))
	}
	if c.Scenario != ScenarioLiveroom && c.Channels > c.Sessions {
		errs = append(errs, fmt.Errorf("%d channels need at least as many sessions (have %d)", c.Channels, c.Sessions))
	}
	if c.Channels < 1 || c.Senders < 1 {
		errs = append(errs, errors.New("channels and senders must be at least 1"))
	}
	finite := func(v float64) bool { return v >= 0 && !math.IsInf(v, 1) } // false for NaN too
	if !finite(c.Rate) || !finite(c.Ramp) || c.Warmup < 0 || c.Duration < 0 {
		errs = append(errs, errors.New("rate, ramp, warmup and duration must be finite and not negative"))
	}
	if c.Drain < 0 || c.Interval < 0 || c.MemoryInterval < 0 || c.DialWorkers < 0 || c.SendWorkers < 0 {
		errs = append(errs, errors.New("drain, intervals and workers may not be negative"))
	}
	if c.MessageBytes < 1 || c.MessageBytes > 4000 {
		errs = append(errs, errors.New("message size must be 1..4000 bytes"))
	}
	if !(c.HistoryShare >= 0 && c.HistoryShare < 1) {
		errs = append(errs, errors.New("history share must be in [0, 1)"))
	}
	if !(c.ReactionShare >= 0 && c.ReactionShare < 1) {
		errs = append(errs, errors.New("reaction share must be in [0, 1)"))
	} else if c.ReactionShare > 0 && c.Scenario != ScenarioLiveroom {
		errs = append(errs, errors.New("reaction share applies to the liveroom scenario only"))
	}
	for _, t := range c.Targets {
		if u, err := url.Parse(t); err != nil || u.Host == "" || !slices.Contains([]string{"ws", "wss", "http", "https"}, u.Scheme) {
			errs = append(errs, fmt.Errorf("target %q: want ws://HOST:PORT/v1/ws or wss://HOST:PORT/v1/ws", t))
		}
	}
	if len(c.RunID) > 24 {
		errs = append(errs, errors.New("run id is at most 24 characters"))
	}
	return errors.Join(errs...)
}
