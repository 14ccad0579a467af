package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/loadtest"
)

type bench struct {
	o       options
	log     *slog.Logger
	m       machine
	goBench []string
	profile []string
	idle    []idleResult
	groups  []*group
	// storm0 and stormRef are the connect storms of -bin and -ref-bin.
	storm0, stormRef []stormRun

	repl      []replicatedRun
	chaos     []faultRun
	quorumRes *quorumRun
}

// group is a set of load-test runs, each against a fresh node; part is
// the -only name that runs it.
type group struct {
	part, title, intro string
	specs              []*spec
}

// spec is one load-test configuration, run o.repeat times.
type spec struct {
	label   string
	offered float64 // deliveries/s offered, when meaningful
	perMsg  float64 // deliveries per message
	cfg     loadtest.Config
	runs
	// ref holds the reference build's runs of the same load (-ref-bin),
	// else nil.
	ref *runs
}

// runs are the results of one build's runs of a spec.
type runs struct {
	reports []*loadtest.Report
	// nodeCores is the node's CPU time (cores) while sends ran, per run.
	nodeCores []float64
	// perCPU is deliveries per node CPU-second while sends ran, per run.
	perCPU []float64
	// setupCPU is the node's CPU time per session while the sessions
	// connected and joined (seconds), per run.
	setupCPU []float64
}

func (b *bench) all(ctx context.Context) error {
	b.m = describeMachine()
	debug.SetGCPercent(400) // as `switchboard loadtest` does
	if _, err := os.Stat(b.o.bin); err != nil {
		return fmt.Errorf("%s: %w (run make build first)", b.o.bin, err)
	}
	if b.o.refBin != "" {
		if _, err := os.Stat(b.o.refBin); err != nil {
			return fmt.Errorf("-ref-bin %s: %w", b.o.refBin, err)
		}
	}
	want := func(part string) bool { return b.o.only == "" || b.o.only == part }
	if want("go") {
		b.goBenchmarks(ctx)
	}
	for _, oneUser := range []bool{false, true} {
		for i := range b.o.repeat {
			if !want("idle") {
				break
			}
			b.log.Info("idle sessions", "run", i+1, "sessions", b.o.sessions, "one_user", oneUser)
			r, err := b.idleRun(ctx, oneUser)
			if err != nil {
				return err
			}
			b.idle = append(b.idle, r)
		}
	}
	b.groups = b.plan()
	for _, g := range b.groups {
		if !want(g.part) {
			continue
		}
		if err := b.runGroup(ctx, g); err != nil {
			return err
		}
	}
	if want("storm") {
		if err := b.storms(ctx); err != nil {
			return err
		}
	}
	if want("replicated") {
		if err := b.replicated(ctx); err != nil {
			return err
		}
	}
	if want("faults") {
		b.faults(ctx)
		if err := b.quorum(ctx); err != nil {
			b.log.Warn("quorum loss run failed", "err", err)
			b.quorumRes = &quorumRun{problems: []string{err.Error()}}
		}
	}
	return ctx.Err()
}

// plan lists the load-test runs.
func (b *bench) plan() []*group {
	short := func(c *loadtest.Config) {
		c.Warmup, c.Duration, c.Drain, c.Seed = 2*time.Second, 8*time.Second, 60*time.Second, 1
		c.Ramp, c.DialWorkers = 2500, 64
		if b.o.quick {
			c.Warmup, c.Duration = 500*time.Millisecond, 2*time.Second
			c.Sessions = min(c.Sessions, 300)
			c.Channels = min(c.Channels, c.Sessions)
		}
	}
	mk := func(label string, f func(*loadtest.Config)) *spec {
		c := loadtest.DefaultConfig()
		f(&c)
		short(&c)
		// Each message reaches every member of its channel.
		perMsg := float64(c.Sessions) / float64(c.Channels)
		if c.Scenario == loadtest.ScenarioLiveroom {
			perMsg = float64(c.Sessions)
		}
		return &spec{label: label, offered: c.Rate * perMsg, perMsg: perMsg, cfg: c}
	}
	live := &group{part: "live", title: "Live room fan-out: 5,000 viewers, 10 senders",
		intro: "One `live` channel; every session watches it; 10 of them send. Each message is delivered to all 5,000 viewers, so deliveries/s = messages/s × 5,000. The sessions connect and join as fast as they can (64 at a time): *connect + join* is how long all 5,000 took. Runs measure 8 s after a 2 s warm-up, those at 20 msg/s 24 s (a p99 over deliveries is set by the slowest few messages: 24 s make it the five slowest instead of two)."}
	for _, rate := range []float64{4, 8, 20} {
		live.specs = append(live.specs, mk(fmt.Sprintf("%.0f msg/s", rate), func(c *loadtest.Config) {
			c.Scenario, c.Sessions, c.Senders, c.Rate = loadtest.ScenarioLiveroom, 5000, 10, rate
		}))
	}
	for _, s := range live.specs {
		s.cfg.Ramp = 0
	}
	// A run's p99 over its deliveries is set by its slowest few messages
	// (each is 5,000 deliveries): at 20 msg/s, 8 s measure about 190
	// messages, and the p99 is the fan-out of the two slowest. Measuring
	// 24 s makes it the five slowest, a steadier figure.
	if top := live.specs[len(live.specs)-1]; !b.o.quick {
		top.cfg.Duration = 24 * time.Second
	}
	calm := &group{part: "live", title: "Live room below saturation: 2,000 viewers, 10 senders",
		intro: "The same room with 2,000 viewers at 10 messages/s (20,000 deliveries/s): the node is far from saturated, so the latency is what a viewer sees of a send — its fsync, the fan-out, the generator's own reading — rather than a queue."}
	calm.specs = append(calm.specs, mk("10 msg/s", func(c *loadtest.Config) {
		c.Scenario, c.Sessions, c.Senders, c.Rate = loadtest.ScenarioLiveroom, 2000, 10, 10
	}))
	durable := &group{part: "durable", title: "Durable acknowledged sends across 1,000 channels",
		intro: "1,000 sessions, each the only member of its own channel: every send is fsynced (group commit) before its acknowledgement, and delivered once (to its sender)."}
	for _, rate := range []float64{2000, 5000, 10000} {
		durable.specs = append(durable.specs, mk(fmt.Sprintf("%.0f msg/s", rate), func(c *loadtest.Config) {
			c.Scenario, c.Sessions, c.Channels, c.Rate = loadtest.ScenarioChat, 1000, 1000, rate
		}))
	}
	chat := &group{part: "chat", title: "Chat: 10,000 sessions in 1,000 rooms of 10",
		intro: "Every member watches its room and members send to it: each message is acknowledged once (durably) and delivered to the 10 members."}
	for _, rate := range []float64{500, 1500} {
		chat.specs = append(chat.specs, mk(fmt.Sprintf("%.0f msg/s", rate), func(c *loadtest.Config) {
			c.Scenario, c.Sessions, c.Channels, c.Rate = loadtest.ScenarioChat, 10000, 1000, rate
		}))
	}
	return []*group{live, calm, durable, chat}
}

// runGroup runs each spec o.repeat times, each run against a fresh node:
// runs on one node pile up users and channels (10,000 new users a chat
// run), and later runs would measure activations instead of traffic.
// With a reference build (-ref-bin), the live room's runs alternate
// between the two builds, each with the same generator, so their ratios
// are of one sitting on one machine.
func (b *bench) runGroup(ctx context.Context, g *group) error {
	for _, s := range g.specs {
		withRef := b.o.refBin != "" && g.part == "live"
		if withRef && s.ref == nil {
			s.ref = &runs{}
		}
		for i := range b.o.repeat {
			type build struct {
				bin  string
				into *runs
				name string
			}
			builds := []build{{b.o.bin, &s.runs, "bin"}}
			if withRef {
				ref := build{b.o.refBin, s.ref, "ref"}
				if i%2 == 0 {
					builds = []build{ref, builds[0]}
				} else {
					builds = append(builds, ref)
				}
			}
			for _, bl := range builds {
				b.log.Info("loadtest", "group", g.title, "run", s.label, "repeat", i+1, "build", bl.name)
				if err := b.runOnce(ctx, s, bl.bin, bl.into); err != nil {
					return fmt.Errorf("%s %s (%s): %w", g.title, s.label, bl.bin, err)
				}
			}
		}
	}
	return nil
}

// runOnce runs s's load once against a fresh node of bin and adds the
// result to into.
func (b *bench) runOnce(ctx context.Context, s *spec, bin string, into *runs) error {
	node, err := startNode(ctx, bin)
	if err != nil {
		return err
	}
	cfg := s.cfg
	cfg.Targets = []string{node.url()}
	// The node's CPU time from the first send until the replies were in:
	// what the node spent on the traffic itself.
	var cpu [2]nodeStats
	var at [2]time.Time
	setup, err := node.stats(ctx)
	if err != nil {
		node.stop(b.o.log)
		return err
	}
	cfg.OnPhase = func(phase string) {
		k := 0
		if phase == loadtest.PhaseDrained {
			k = 1
		}
		at[k] = time.Now()
		cpu[k], _ = node.stats(ctx)
	}
	rep, err := loadtest.Run(ctx, cfg)
	node.stop(b.o.log)
	if err != nil {
		return err
	}
	if secs := cpu[0].cpu - setup.cpu; secs > 0 && cfg.Sessions > 0 {
		into.setupCPU = append(into.setupCPU, secs/float64(cfg.Sessions))
	}
	perCPU := 0.0
	if secs := cpu[1].cpu - cpu[0].cpu; secs > 0 && at[1].After(at[0]) {
		perCPU = float64(rep.Totals.Deliveries) / secs
		into.nodeCores = append(into.nodeCores, secs/at[1].Sub(at[0]).Seconds())
		into.perCPU = append(into.perCPU, perCPU)
	}
	rep.Command = command(cfg)
	into.reports = append(into.reports, rep)
	b.log.Info("result", "acks/s", int(rep.Totals.AcksPerSec), "deliveries/s", int(rep.Totals.DeliveriesPerSec), "per_node_cpu_s", int(perCPU),
		"ack_p99_ms", rep.Latency["send_ack"].P99, "delivered_p99_ms", rep.Latency["send_delivered"].P99, "ok", rep.OK, "problems", rep.Problems)
	return nil
}

// command is the `switchboard loadtest` line equivalent to a run.
func command(c loadtest.Config) string {
	s := fmt.Sprintf("switchboard loadtest --target %s --scenario %s --sessions %d", strings.Join(c.Targets, ","), c.Scenario, c.Sessions)
	if c.Scenario == loadtest.ScenarioLiveroom {
		s += fmt.Sprintf(" --senders %d", c.Senders)
	} else {
		s += fmt.Sprintf(" --channels %d", c.Channels)
	}
	return s + fmt.Sprintf(" --rate %g --warmup %s --duration %s --seed %d --ramp %g --drain %s", c.Rate, c.Warmup, c.Duration, c.Seed, c.Ramp, c.Drain)
}

// idleResult is one idle-session memory measurement.
type idleResult struct {
	sessions                       int
	oneUser                        bool
	heapPer, rssPer, goroutinesPer float64 // node, per session
	stackPer                       float64
	liveHeapPer                    float64 // node heap per session after a full GC
	genHeapPer, genGoroutinesPer   float64 // generator (client side), per session
	before, after                  nodeStats
	connectSeconds                 float64
}

// idleRun opens o.sessions idle sessions against a fresh node and
// measures what each costs on both sides. With oneUser every session is
// the same user, which leaves out the user actor each distinct user
// activates on a host node: what remains is the gateway's own cost.
func (b *bench) idleRun(ctx context.Context, oneUser bool) (idleResult, error) {
	node, err := startNode(ctx, b.o.bin, "--debug-pprof") // for a forced GC (statsCollected)
	if err != nil {
		return idleResult{}, err
	}
	defer node.stop(b.o.log)
	settle := func() {
		t := time.NewTimer(3 * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	settle()
	before, beforeGC, err := node.statsCollected(ctx)
	if err != nil {
		return idleResult{}, err
	}
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	g0 := runtime.NumGoroutine()

	n := b.o.sessions
	clients := make([]*client.Client, n)
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	forEach(0, n, func(i int) {
		user := fmt.Sprintf("idle-%d", i)
		if oneUser {
			user = "idle"
		}
		c, err := dialIdle(ctx, node.url(), user)
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			return
		}
		clients[i] = c
	})
	connectSeconds := time.Since(start).Seconds()
	defer closeAll(clients)
	if firstErr != nil {
		return idleResult{}, fmt.Errorf("idle sessions: %w", firstErr)
	}
	settle()
	after, afterGC, err := node.statsCollected(ctx)
	if err != nil {
		return idleResult{}, err
	}
	runtime.GC()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	fn := float64(n)
	return idleResult{
		sessions: n, oneUser: oneUser, before: before, after: after, connectSeconds: connectSeconds,
		stackPer:         (after.stack - before.stack) / fn,
		heapPer:          (after.heap - before.heap) / fn,
		liveHeapPer:      (afterGC.heap - beforeGC.heap) / fn,
		rssPer:           (after.rss - before.rss) / fn,
		goroutinesPer:    (after.goroutines - before.goroutines) / fn,
		genHeapPer:       (float64(ms1.HeapInuse) - float64(ms0.HeapInuse)) / fn,
		genGoroutinesPer: float64(runtime.NumGoroutine()-g0) / fn,
	}, nil
}

// goBenchmarks runs the Go benchmarks and profiles the in-process live
// room benchmark.
func (b *bench) goBenchmarks(ctx context.Context) {
	b.log.Info("go benchmarks")
	micro := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", "20000x", "./client", "./gateway", "./loadtest"}
	b.goBench = append(b.goBench, "$ go "+strings.Join(micro, " "))
	b.goBench = append(b.goBench, benchLines(ctx, micro)...)
	prof := filepath.Join(os.TempDir(), "switchboard-bench-cpu.out")
	inproc := []string{"test", "-run", "^$", "-bench", ".", "-benchtime", "1x", "-cpuprofile", prof, "./cmd/switchboard"}
	if b.o.quick {
		inproc = []string{"test", "-run", "^$", "-bench", "BenchmarkDurableSends", "-benchtime", "1x", "-cpuprofile", prof, "./cmd/switchboard"}
	}
	b.goBench = append(b.goBench, "$ go "+strings.Join(inproc, " "))
	b.goBench = append(b.goBench, benchLines(ctx, inproc)...)
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount", "30", prof).Output()
	if err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		b.profile = append([]string{"$ go tool pprof -top -nodecount 30 " + prof}, lines...)
	}
	os.Remove(prof)
	os.Remove("switchboard.test")
}

func benchLines(ctx context.Context, args []string) []string {
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "cpu:") {
			lines = append(lines, l)
		}
	}
	if err != nil {
		lines = append(lines, "(go test failed: "+err.Error()+")")
	}
	return lines
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// med applies f to each report of r and returns the median.
func (s *runs) med(f func(*loadtest.Report) float64) float64 {
	xs := make([]float64, len(s.reports))
	for i, r := range s.reports {
		xs[i] = f(r)
	}
	return median(xs)
}
