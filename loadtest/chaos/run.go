package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/loadtest"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Wipe identities (Config.WipeIdentity).
const (
	// IdentityNew: a wiped node comes back under a new name, and the
	// cluster is told to forget the old one (POST /v1/cluster/forget), as
	// an operator replacing a lost node does.
	IdentityNew = "new"
	// IdentitySame: a wiped node comes back under its old name with an
	// empty data directory, as a node whose disk was replaced under an
	// unchanged unit file does.
	IdentitySame = "same"
)

// Config is one chaos run.
type Config struct {
	// Bin is the switchboard binary the nodes run (`Bin serve …`).
	Bin string
	// Out receives report.json, report.html, evidence.json, the nodes'
	// logs (logs/) and data directories (data/).
	Out string
	// Nodes is the cluster's size.
	Nodes int
	// Warmup is load before the first fault can happen; Duration the
	// load after it, during which faults happen.
	Warmup, Duration time.Duration
	// Faults are the kinds to inject (Kinds).
	Faults []string
	// Seed fixes the fault plan and the load's schedule.
	Seed uint64
	// FaultInterval is the mean time between two faults' starts.
	FaultInterval time.Duration
	// Down is the mean time a killed, wiped or drained node stays down;
	// Pause the shortest SIGSTOP (longer than an election takes).
	Down, Pause time.Duration
	// Detection is the nodes' --failure-detection.
	Detection string
	// DrainTimeout is the nodes' --drain-timeout.
	DrainTimeout time.Duration
	// WipeIdentity is IdentityNew or IdentitySame.
	WipeIdentity string
	// ServeArgs are added to every node's `serve` flags (after the
	// harness's own, so they win).
	ServeArgs []string
	// APIKey is sent to the operator API. Without one the harness makes
	// one up and gives it to the nodes (--api-key): forgetting a wiped
	// node needs one. Set it when ServeArgs set --api-key.
	APIKey string
	// The load: chat across every gateway.
	Sessions, Channels int
	Rate               float64
	MessageBytes       int
	// LoadDrain bounds the load's wait for outstanding replies and its
	// final checks.
	LoadDrain time.Duration
	// StallTimeout is the load's loadtest.Config.StallTimeout.
	StallTimeout time.Duration
	// KeepData keeps the nodes' data directories after a passing run
	// (a failing run always keeps them).
	KeepData bool
	// Command is the command line, for the report.
	Command  string
	Progress io.Writer
	Logger   *slog.Logger
}

// DefaultConfig is the run `switchboard chaos` makes without flags.
func DefaultConfig() Config {
	return Config{
		Nodes: 3, Warmup: 5 * time.Second, Duration: 60 * time.Second, Faults: Kinds, Seed: 1,
		FaultInterval: 10 * time.Second, Down: 2 * time.Second, Pause: 3 * time.Second,
		Detection: "fast", DrainTimeout: 30 * time.Second, WipeIdentity: IdentityNew,
		Sessions: 60, Channels: 12, Rate: 100, MessageBytes: 64, LoadDrain: 30 * time.Second,
	}
}

// Validate checks a config.
func (c Config) Validate() error {
	var errs []error
	if c.Bin == "" || c.Out == "" {
		errs = append(errs, errors.New("a binary and an output directory are required"))
	}
	if c.Nodes < 1 || c.Nodes > 16 {
		errs = append(errs, errors.New("nodes must be 1..16"))
	}
	if c.Duration <= 0 || c.Warmup < 0 || c.FaultInterval <= 0 || c.Down <= 0 || c.Pause <= 0 || c.LoadDrain <= 0 || c.DrainTimeout <= 0 {
		errs = append(errs, errors.New("duration, fault interval, down, pause, drain and drain timeout must be more than 0, warmup not negative"))
	}
	for _, k := range c.Faults {
		if !slices.Contains(Kinds, k) {
			errs = append(errs, fmt.Errorf("unknown fault %q", k))
		}
	}
	if c.WipeIdentity != IdentityNew && c.WipeIdentity != IdentitySame {
		errs = append(errs, fmt.Errorf("wipe identity %q: want new or same", c.WipeIdentity))
	}
	if c.Detection == "" {
		errs = append(errs, errors.New("failure detection preset required"))
	}
	lc := c.loadConfig()
	lc.RunID = "x"
	if err := lc.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loadConfig is the load's config, without targets and hooks.
func (c Config) loadConfig() loadtest.Config {
	lc := loadtest.DefaultConfig()
	lc.Scenario = loadtest.ScenarioChat
	lc.Sessions, lc.Channels, lc.Rate, lc.MessageBytes = c.Sessions, c.Channels, c.Rate, c.MessageBytes
	lc.Warmup, lc.Duration, lc.Seed, lc.Drain = c.Warmup, c.Duration, c.Seed, c.LoadDrain
	lc.StallTimeout = c.StallTimeout
	lc.Ramp = 0
	// Fixed by the seed, so the same seed puts the same channels on the
	// same nodes (each run starts a fresh cluster).
	lc.RunID = fmt.Sprintf("chaos%d", c.Seed%1e12)
	return lc
}

// Run starts the cluster, runs the load and the faults, checks every
// channel and returns the report (also when it failed; see Report.OK).
// It returns an error only when the run could not take place. Every
// process it started has ended when it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	lc := cfg.loadConfig()
	layout, err := loadtest.LayoutOf(lc)
	if err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now().UTC()}
	rep.config(&cfg)
	rep.Plan = Plan(PlanConfig{Seed: cfg.Seed, Kinds: cfg.Faults, Nodes: cfg.Nodes, Channels: len(layout.ChannelIDs),
		Start: cfg.Warmup, End: cfg.Warmup + cfg.Duration, Interval: cfg.FaultInterval,
		Settle: settleAllowance, Down: cfg.Down, Pause: cfg.Pause})
	if len(cfg.Faults) > 0 && len(rep.Plan) == 0 {
		return nil, fmt.Errorf("no fault fits in %s (each needs its hold, and %s to recover, before the load ends): lengthen the duration or shorten the fault interval",
			cfg.Duration, settleAllowance)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	c, err := newCluster(&cfg)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.startAll(ctx); err != nil {
		return nil, fmt.Errorf("the cluster did not start: %w", err)
	}
	c.event("cluster of %d up; load: %d sessions on %d channels at %.0f msg/s for %s + %s; %d faults planned",
		cfg.Nodes, cfg.Sessions, cfg.Channels, cfg.Rate, cfg.Warmup, cfg.Duration, len(rep.Plan))

	lc.Targets = nil // not the default's
	for _, n := range c.nodes {
		lc.Targets = append(lc.Targets, n.ws())
	}
	lc.Logger, lc.Progress = cfg.Logger, cfg.Progress
	rec := &recorder{}
	lc.OnSend = rec.add
	in := &injector{c: c, channels: layout.ChannelIDs}
	load, err := in.withLoad(ctx, lc, rec, rep.Plan)
	rep.Faults, rep.Load = in.faults, load
	if err != nil {
		rep.Problems = append(rep.Problems, "the load could not run: "+err.Error())
	}

	var histories []History
	if ctx.Err() == nil {
		if err := c.converge(ctx, settleTimeout); err != nil {
			rep.Problems = append(rep.Problems, err.Error())
		}
		if reader := c.reader(rep.Faults); reader != nil {
			rep.ReadFrom = reader.name
			histories = readHistories(ctx, reader, layout.ChannelIDs, cfg)
		}
	}
	acks := rec.acks()
	if ctx.Err() == nil && rep.ReadFrom != "" {
		v := Check(acks, histories)
		rep.Check = &v
	}
	rep.finish(c, rec, in.origin, ctx.Err() != nil)
	if err := writeEvidence(cfg.Out, Evidence{Acks: acks, Histories: histories, Unacked: rec.unacked()}); err != nil {
		rep.Problems = append(rep.Problems, "write evidence: "+err.Error())
		rep.OK = false
	}
	c.close()
	rep.Nodes = c.report()
	if n, first := timeoutsLogged(rep.Nodes); n > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the nodes logged %d requests to other nodes that timed out, each a caller that waited out its whole timeout (a lost request or reply, or a stuck node); the first: %s", n, first))
	}
	if rep.OK && !cfg.KeepData {
		_ = c.removeData()
	}
	return rep, nil
}

// startAll starts every node at once and waits for them to form the
// cluster.
func (c *cluster) startAll(ctx context.Context) error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { errs[i] = c.start(ctx, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.converge(ctx, settleTimeout)
}

// withLoad runs the load with the plan's faults injected from its first
// send until its schedule ends; every node is back before the load's
// final checks.
func (in *injector) withLoad(ctx context.Context, lc loadtest.Config, rec *recorder, plan []Planned) (*loadtest.Report, error) {
	end, endFaults := context.WithCancel(ctx)
	defer endFaults()
	done := make(chan struct{})
	started := false
	lc.OnPhase = func(phase string) {
		switch phase {
		case loadtest.PhaseSending:
			started = true
			in.origin = time.Now()
			rec.start(in.origin)
			stop := time.AfterFunc(lc.Warmup+lc.Duration, endFaults)
			go func() {
				defer close(done)
				defer stop.Stop()
				in.run(ctx, end, plan)
			}()
		case loadtest.PhaseDrained:
			endFaults()
			<-done
		}
	}
	load, err := loadtest.Run(ctx, lc)
	endFaults()
	if started {
		<-done
	}
	return load, err
}

// settleAllowance is the time a plan keeps free after the last fault's
// hold for the node to come back before the load ends.
const settleAllowance = 3 * time.Second

// reader picks the node to read history from: a running node hit by the
// fewest faults.
func (c *cluster) reader(faults []Fault) *node {
	hits := map[string]int{}
	for _, f := range faults {
		hits[f.Node]++
	}
	var best *node
	for _, n := range c.running() {
		if best == nil || hits[n.base] < hits[best.base] {
			best = n
		}
	}
	return best
}

// readHistories reads every channel's whole history from one node, a few
// channels at a time, each reader on a session of its own (a session's
// requests are paced by the node's --session-rate).
func readHistories(ctx context.Context, n *node, channels []string, cfg Config) []History {
	out := make([]History, len(channels))
	next := make(chan int, len(channels))
	for i := range channels {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(8, len(channels)) {
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			cl, err := client.Dial(dctx, client.Options{URLs: []string{n.ws()}, UserID: "chaos-checker", Logger: cfg.Logger})
			cancel()
			if err == nil {
				defer cl.Close()
			}
			for i := range next {
				if err != nil {
					out[i] = History{Channel: channels[i], Err: fmt.Sprintf("connect to %s: %v", n.base, err)}
					continue
				}
				out[i] = readHistory(ctx, cl, channels[i], cfg.LoadDrain)
			}
		})
	}
	wg.Wait()
	return out
}

// readHistory pages through one channel's history, oldest first; each
// page may take up to wait (the client retries unavailable meanwhile).
func readHistory(ctx context.Context, cl *client.Client, ch string, wait time.Duration) History {
	h := History{Channel: ch}
	after, limit := uint64(0), 100
	for {
		cctx, cancel := context.WithTimeout(ctx, wait)
		res, err := cl.History(cctx, protocol.HistoryArgs{Channel: ch, After: &after, Limit: &limit})
		cancel()
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Code == protocol.CodeNotFound && after == 0 {
			return History{Channel: ch, Missing: true}
		}
		if err != nil {
			return History{Channel: ch, Err: err.Error()}
		}
		for _, m := range res.Messages {
			h.Messages = append(h.Messages, Message{Segment: m.Segment, ID: m.ID, ClientID: m.ClientID, Sender: m.User})
		}
		if !res.HasMore || len(res.Messages) == 0 {
			return h
		}
		after = res.Messages[len(res.Messages)-1].Segment
	}
}

// recorder keeps how every send of the load ended.
type recorder struct {
	mu       sync.Mutex
	origin   time.Time
	outcomes []outcome
}

// outcome is one send, its times from the first send.
type outcome struct {
	channel, sender, clientID, code, messageID string
	segment                                    uint64
	intended, issued, settled                  time.Duration
}

func (r *recorder) start(origin time.Time) {
	r.mu.Lock()
	r.origin = origin
	r.mu.Unlock()
}

func (r *recorder) add(o loadtest.SendOutcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	x := outcome{channel: o.Channel, sender: o.User, clientID: o.ClientID, code: o.Code, messageID: o.MessageID,
		segment: o.Segment, intended: o.Intended.Sub(r.origin), settled: o.Settled.Sub(r.origin)}
	x.issued = x.intended
	if !o.Issued.IsZero() {
		x.issued = o.Issued.Sub(r.origin)
	}
	r.outcomes = append(r.outcomes, x)
}

// acks are the acknowledged sends, for Check.
func (r *recorder) acks() []Ack {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Ack
	for _, o := range r.outcomes {
		if o.code == "ok" {
			out = append(out, Ack{Channel: o.channel, Segment: o.segment, ClientID: o.clientID, MessageID: o.messageID,
				Sender: o.sender, Sent: o.issued, Acked: o.settled})
		}
	}
	return out
}

// unacked are the sends that were not acknowledged.
func (r *recorder) unacked() []Unacked {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Unacked
	for _, o := range r.outcomes {
		if o.code != "ok" {
			out = append(out, Unacked{Channel: o.channel, ClientID: o.clientID, Sender: o.sender, Code: o.code,
				Intended: o.intended, Settled: o.settled})
		}
	}
	return out
}

func (r *recorder) all() []outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.outcomes)
}
