package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/loadtest"
	"github.com/switchboard-chat/switchboard/loadtest/chaos"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Replication figures: acknowledged sends on a three-node cluster (every
// send replicated to a majority, each copy fsynced), and what each fault
// costs the channels — a leader killed, paused, wiped; two nodes of three
// killed.

// replicatedRun is one load run against a three-node cluster.
type replicatedRun struct {
	rate            float64
	report          *loadtest.Report
	nodeCores       float64 // the three nodes' CPU time over the run's wall time
	cpuPerAckUS     float64 // node CPU (all three) per acknowledged send, µs
	fsyncsPerSecond float64 // the three nodes' raft fsyncs per second
}

// faultRun is one `switchboard chaos` run with one kind of fault.
type faultRun struct {
	kind    string
	command string
	report  *chaos.Report
	err     error
}

// quorumRun is the two-of-three outage.
type quorumRun struct {
	ackedBefore, ackedDuring, refusedDuring int
	firstRefusalMS                          float64
	recoveredS                              float64 // from restarting the two to the first acknowledgement
	verified                                int     // acknowledged messages found once, at their segment
	problems                                []string
}

var gossipRE = regexp.MustCompile(`gossip on (\S+),`)

// startCluster runs n nodes (fast failure detection) and waits until
// every shard has its three replicas, caught up, led by its preferred one.
func startCluster(ctx context.Context, bin string, n int, extra ...string) ([]*nodeProc, error) {
	var nodes []*nodeProc
	fail := func(err error) ([]*nodeProc, error) {
		for _, p := range nodes {
			p.stop(os.Stderr)
		}
		return nil, err
	}
	seed := ""
	var names []string
	for i := range n {
		name := fmt.Sprintf("b%d", i+1)
		args := append([]string{"--node-name", name, "--failure-detection", "fast", "--drain-timeout", "0"}, extra...)
		if seed != "" {
			args = append(args, "--join", seed)
		}
		p, err := startNode(ctx, bin, args...)
		if err != nil {
			return fail(err)
		}
		nodes = append(nodes, p)
		names = append(names, name)
		if seed == "" {
			if seed, err = p.gossipAddr(); err != nil {
				return fail(err)
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for !settled(nodes[0].addr, names) {
		if time.Now().After(deadline) {
			return fail(errors.New("the cluster did not settle in a minute"))
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nodes, nil
}

// gossipAddr reads the node's gossip address from its start-up line.
func (p *nodeProc) gossipAddr() (string, error) {
	b, err := os.ReadFile(filepath.Join(p.dir, "stdout"))
	if err != nil {
		return "", err
	}
	if m := gossipRE.FindSubmatch(b); m != nil {
		return string(m[1]), nil
	}
	return "", errors.New("the node printed no gossip address")
}

// settled reports whether every shard, as addr sees it, has its replicas
// on the first three hosts in rank, all caught up, and is led by the first.
func settled(addr string, hosts []string) bool {
	var v struct {
		ShardCount int `json:"shard_count"`
		Shards     []struct {
			ID       uint32 `json:"id"`
			Leader   string `json:"leader"`
			Replicas []struct {
				Node  string `json:"node"`
				Role  string `json:"role"`
				State string `json:"state"`
			} `json:"replicas"`
		} `json:"shards"`
	}
	resp, err := http.Get("http://" + addr + "/v1/cluster")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&v) != nil || v.ShardCount == 0 || len(v.Shards) != v.ShardCount {
		return false
	}
	for _, sh := range v.Shards {
		rank := cluster.Rank(hosts, fmt.Sprintf("shard/%d", sh.ID))
		want := slices.Clone(rank[:min(3, len(rank))])
		var got []string
		for _, r := range sh.Replicas {
			if r.Role != "voter" || (r.Node != sh.Leader && r.State != "replicate") {
				return false
			}
			got = append(got, r.Node)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) || sh.Leader != rank[0] {
			return false
		}
	}
	return true
}

// clusterStats sums the nodes' CPU time and raft fsyncs.
func clusterStats(ctx context.Context, nodes []*nodeProc) (cpu, fsyncs float64) {
	for _, p := range nodes {
		s, _ := p.stats(ctx)
		cpu += s.cpu
		fsyncs += s.fsyncs
	}
	return cpu, fsyncs
}

func stopAll(nodes []*nodeProc) {
	var wg sync.WaitGroup
	for _, p := range nodes {
		wg.Go(func() { p.stop(os.Stderr) })
	}
	wg.Wait()
}

// replicated runs the chat load (1,000 sessions, each alone in its
// channel) against every gateway of a fresh three-node cluster.
func (b *bench) replicated(ctx context.Context) error {
	rates := []float64{2000, 5000, 10000}
	if b.o.quick {
		rates = []float64{500}
	}
	for _, rate := range rates {
		for i := range b.o.repeat {
			nodes, err := startCluster(ctx, b.o.bin, 3)
			if err != nil {
				return err
			}
			cfg := loadtest.DefaultConfig()
			cfg.Scenario, cfg.Sessions, cfg.Channels, cfg.Rate = loadtest.ScenarioChat, 1000, 1000, rate
			cfg.Warmup, cfg.Duration, cfg.Drain, cfg.Seed, cfg.Ramp, cfg.DialWorkers = 2*time.Second, 8*time.Second, 60*time.Second, 1, 2500, 64
			if b.o.quick {
				cfg.Sessions, cfg.Channels, cfg.Warmup, cfg.Duration = 300, 300, 500*time.Millisecond, 2*time.Second
			}
			cfg.Targets = nil
			for _, p := range nodes {
				cfg.Targets = append(cfg.Targets, p.url())
			}
			var cpu, fsyncs [2]float64
			var at [2]time.Time
			cfg.OnPhase = func(phase string) {
				k := 0
				if phase == loadtest.PhaseDrained {
					k = 1
				}
				at[k] = time.Now()
				cpu[k], fsyncs[k] = clusterStats(ctx, nodes)
			}
			b.log.Info("loadtest", "group", "replicated", "rate", rate, "repeat", i+1)
			rep, err := loadtest.Run(ctx, cfg)
			stopAll(nodes)
			if err != nil {
				return fmt.Errorf("replicated %g msg/s: %w", rate, err)
			}
			rep.Command = command(cfg)
			run := replicatedRun{rate: rate, report: rep}
			if secs := at[1].Sub(at[0]).Seconds(); secs > 0 && rep.Totals.Acked > 0 {
				run.nodeCores = (cpu[1] - cpu[0]) / secs
				run.cpuPerAckUS = (cpu[1] - cpu[0]) / float64(rep.Totals.Acked) * 1e6
				run.fsyncsPerSecond = (fsyncs[1] - fsyncs[0]) / secs
			}
			b.repl = append(b.repl, run)
			b.log.Info("result", "acks/s", int(rep.Totals.AcksPerSec), "ack_p99_ms", rep.Latency["send_ack"].P99,
				"cpu_per_ack_us", int(run.cpuPerAckUS), "fsyncs/s", int(run.fsyncsPerSecond), "ok", rep.OK)
		}
	}
	return nil
}

// faults runs `switchboard chaos` once per kind of fault: a leader killed
// (kill -9, back after 2 s), paused (SIGSTOP for 10 s), wiped (its data
// directory deleted, back after 2 s, rebuilt by snapshot).
func (b *bench) faults(ctx context.Context) {
	for _, kind := range []string{chaos.FaultKill, chaos.FaultPause, chaos.FaultWipe} {
		out, err := os.MkdirTemp("", "switchboard-bench-chaos-")
		if err != nil {
			b.chaos = append(b.chaos, faultRun{kind: kind, err: err})
			continue
		}
		dur := "40s"
		if b.o.quick {
			dur = "15s"
		}
		args := []string{"chaos", "--nodes", "3", "--duration", dur, "--warmup", "5s", "--faults", kind, "--seed", "1",
			"--fault-interval", "15s", "--pause", "10s", "--down", "2s", "--failure-detection", "fast", "--wipe-identity", "same",
			"--sessions", "60", "--channels", "12", "--rate", "200", "--out", out, "--quiet"}
		b.log.Info("chaos", "fault", kind)
		cmd := exec.CommandContext(ctx, b.o.bin, args...)
		outb, runErr := cmd.CombinedOutput()
		fr := faultRun{kind: kind, command: "switchboard " + strings.Join(args[:len(args)-3], " ")}
		if raw, err := os.ReadFile(filepath.Join(out, "report.json")); err == nil {
			var rep chaos.Report
			if err := json.Unmarshal(raw, &rep); err == nil {
				fr.report = &rep
			}
		}
		if fr.report == nil {
			fr.err = fmt.Errorf("no report: %v\n%s", runErr, lastLines(string(outb), 5))
		}
		b.chaos = append(b.chaos, fr)
		if runErr == nil {
			os.RemoveAll(out)
		} else {
			b.log.Warn("chaos run failed; its output is kept", "dir", out, "err", runErr)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// quorum kills two nodes of three under traffic through the third: no
// send may be acknowledged without a majority (none split off on its
// own); once the two are back, every acknowledged send is there.
func (b *bench) quorum(ctx context.Context) error {
	// One client sends as fast as it can, to see the first refusal as soon
	// as the majority is gone: a session's request rate is not measured here.
	nodes, err := startCluster(ctx, b.o.bin, 3, "--session-rate", "0")
	if err != nil {
		return err
	}
	defer stopAll(nodes)
	var q quorumRun
	const channels = 12
	c, err := client.Dial(ctx, client.Options{URLs: []string{nodes[0].url()}, UserID: "quorum", MaxRetry: time.Millisecond})
	if err != nil {
		return err
	}
	defer c.Close()
	var acked []*protocol.Message
	for i := range channels {
		if _, _, err := c.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: fmt.Sprintf("q%d", i), Type: protocol.TypeStandard}); err != nil {
			return err
		}
	}
	seq := 0
	send := func() (*protocol.Message, error) {
		seq++
		return c.Send(ctx, protocol.SendArgs{Channel: fmt.Sprintf("q%d", seq%channels), Text: "q", ClientID: "q" + strconv.Itoa(seq)})
	}
	for range 200 {
		m, err := send()
		if err != nil {
			return fmt.Errorf("before the outage: %w", err)
		}
		acked = append(acked, m)
	}
	q.ackedBefore = len(acked)
	killed := time.Now()
	for _, p := range nodes[1:] {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	for time.Since(killed) < 5*time.Second {
		m, err := send()
		var pe *protocol.Error
		switch {
		case err == nil:
			// Acknowledged by a majority that was still there a moment ago;
			// none may be once failure detection has had its time.
			acked = append(acked, m)
			if time.Since(killed) > 2*time.Second {
				q.ackedDuring++
				q.problems = append(q.problems, fmt.Sprintf("segment %d of %s acknowledged %v after two of three nodes died", m.Segment, m.Channel, time.Since(killed).Round(time.Millisecond)))
			}
		case errors.As(err, &pe) && pe.Code == protocol.CodeUnavailable:
			if q.refusedDuring == 0 {
				q.firstRefusalMS = float64(time.Since(killed).Microseconds()) / 1000
			}
			q.refusedDuring++
		default:
			q.problems = append(q.problems, "a send without a majority: "+err.Error())
		}
		time.Sleep(5 * time.Millisecond)
	}
	restart := time.Now()
	seed, _ := nodes[0].gossipAddr()
	for i := range nodes[1:] {
		p, err := startNodeDir(ctx, b.o.bin, nodes[i+1].dir, "--node-name", fmt.Sprintf("b%d", i+2), "--failure-detection", "fast",
			"--drain-timeout", "0", "--join", seed)
		if err != nil {
			return err
		}
		nodes[i+1] = p
	}
	for {
		m, err := send()
		if err == nil {
			acked = append(acked, m)
			q.recoveredS = time.Since(restart).Seconds()
			break
		}
		if time.Since(restart) > time.Minute {
			return errors.New("no send acknowledged a minute after the two nodes restarted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Every acknowledged message once, at its segment.
	reader, err := client.Dial(ctx, client.Options{URLs: []string{nodes[0].url(), nodes[1].url()}, UserID: "quorum", MaxRetry: 30 * time.Second})
	if err != nil {
		return err
	}
	defer reader.Close()
	bySeg := map[string]map[uint64]string{}
	for i := range channels {
		ch := fmt.Sprintf("q%d", i)
		bySeg[ch] = map[uint64]string{}
		after := uint64(0)
		for {
			limit := 100
			h, err := reader.History(ctx, protocol.HistoryArgs{Channel: ch, After: &after, Limit: &limit})
			if err != nil {
				return err
			}
			for _, m := range h.Messages {
				bySeg[ch][m.Segment] = m.ID
			}
			if !h.HasMore || len(h.Messages) == 0 {
				break
			}
			after = h.Messages[len(h.Messages)-1].Segment
		}
	}
	for _, m := range acked {
		if bySeg[m.Channel][m.Segment] == m.ID {
			q.verified++
		} else {
			q.problems = append(q.problems, fmt.Sprintf("acknowledged segment %d of %s missing", m.Segment, m.Channel))
		}
	}
	b.quorumRes = &q
	return nil
}

// replicationMarkdown writes the replication figures.
func (b *bench) replicationMarkdown(p func(string, ...any)) {
	if len(b.repl) == 0 && len(b.chaos) == 0 && b.quorumRes == nil {
		return
	}
	p("## Replication: three nodes, every send on a majority\n\n")
	if len(b.repl) > 0 {
		p("Three `serve` processes (`--failure-detection fast`, 64 shards, 3 replicas each) and the load generator share the machine's %d cores. 1,000 sessions, each the only member of its own channel, connect to the three gateways; a send is acknowledged once its entry is committed — written and fsynced by at least two of the three nodes — and applied by its leader. *Node CPU* is the three nodes' CPU time together over the run; *CPU per ack* divides it by the acknowledged sends; *fsyncs/s* are the three nodes' raft rounds that synced (each serves every shard written in that round).\n\n", b.m.Cores)
		p("| rate | acks/s | ack p50 | ack p99 | node CPU (cores, 3 nodes) | node CPU per ack | fsyncs/s (3 nodes) | errors | result |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, rate := range uniqRates(b.repl) {
			var runs []replicatedRun
			for _, r := range b.repl {
				if r.rate == rate {
					runs = append(runs, r)
				}
			}
			med := func(f func(replicatedRun) float64) float64 {
				xs := make([]float64, len(runs))
				for i, r := range runs {
					xs[i] = f(r)
				}
				return median(xs)
			}
			ok := 0
			for _, r := range runs {
				if r.report.OK {
					ok++
				}
			}
			p("| %.0f msg/s | %.0f | %.1f ms | %.1f ms | %.2f | %.0f µs | %.0f | %.0f | %d/%d OK |\n", rate,
				med(func(r replicatedRun) float64 { return r.report.Totals.AcksPerSec }),
				med(func(r replicatedRun) float64 { return r.report.Latency["send_ack"].P50 }),
				med(func(r replicatedRun) float64 { return r.report.Latency["send_ack"].P99 }),
				med(func(r replicatedRun) float64 { return r.nodeCores }), med(func(r replicatedRun) float64 { return r.cpuPerAckUS }),
				med(func(r replicatedRun) float64 { return r.fsyncsPerSecond }),
				med(func(r replicatedRun) float64 { return float64(r.report.Totals.Errors) }), ok, len(runs))
		}
		p("\nRuns:\n\n")
		for _, r := range b.repl {
			p("- %.0f msg/s: %.0f acks/s, ack p99 %.1f ms, %.0f µs node CPU per ack, %.0f fsyncs/s, %s; %s\n", r.rate, r.report.Totals.AcksPerSec,
				r.report.Latency["send_ack"].P99, r.cpuPerAckUS, r.fsyncsPerSecond, r.report.Oracle.Summary(), r.report.Result())
		}
		p("\nCommand (against a cluster started as in the README's *Running a cluster*): `%s`\n\n", b.repl[0].report.Command)
	}
	if len(b.chaos) > 0 {
		p("### Faults\n\nEach row is one `switchboard chaos` run with one kind of fault, on its own three-node cluster under the chat load (60 sessions in 12 rooms, 200 msg/s), the faulted node chosen as the leader of a channel's shard. *Unavailability* is, per channel, the longest any send intended from the fault until the cluster recovered waited for its answer (acknowledgement or error); the p50, p99 and max are over the channels. *Check* is the end-of-run check of every channel's history against every acknowledgement (lost, duplicated, out of order, two contents for a segment).\n\n")
		p("| fault | faults | unavailability p50 | p99 | max | failed sends during | recovered after | check | run |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, fr := range b.chaos {
			if fr.report == nil {
				p("| %s | — | — | — | — | — | — | — | failed: %v |\n", fr.kind, fr.err)
				continue
			}
			rep := fr.report
			var p50s, p99s, maxs, recov []float64
			failed := 0
			for _, f := range rep.Faults {
				u := f.Unavailability
				p50s, p99s, maxs = append(p50s, u.P50MS), append(p99s, u.P99MS), append(maxs, u.MaxMS)
				failed += u.Failed
				if f.RecoveredS > 0 {
					recov = append(recov, f.RecoveredS-f.AtS)
				}
			}
			check := "not run"
			if rep.Check != nil {
				check = rep.Check.Summary()
			}
			res := "OK"
			if !rep.OK {
				res = "problems: " + strings.Join(rep.Problems, "; ")
			}
			p("| %s | %d | %.0f ms | %.0f ms | %.0f ms | %d | %.1f s | %s | %s |\n", fr.kind, len(rep.Faults), median(p50s), median(p99s),
				slicesMax(maxs), failed, median(recov), check, res)
		}
		p("\nCommands:\n\n```\n")
		for _, fr := range b.chaos {
			p("%s --out DIR\n", fr.command)
		}
		p("```\n\n")
	}
	if q := b.quorumRes; q != nil {
		p("### Two of three nodes killed\n\nOne client sends to 12 channels through the surviving node's gateway; after 200 acknowledged sends the two other nodes are killed (SIGKILL) for 5 s, then restarted with `--join`.\n\n")
		p("| acknowledged before | acknowledged after the kill (> 2 s) | refused (unavailable) | first refusal after | first ack after the restart | acknowledged messages found once | problems |\n|---|---|---|---|---|---|---|\n")
		p("| %d | %d | %d | %.0f ms | %.1f s | %d | %s |\n\n", q.ackedBefore, q.ackedDuring, q.refusedDuring, q.firstRefusalMS, q.recoveredS, q.verified,
			strings.Join(append([]string{"none"}, q.problems...)[min(1, len(q.problems)):], "; "))
	}
}

func uniqRates(runs []replicatedRun) []float64 {
	var out []float64
	for _, r := range runs {
		if !slices.Contains(out, r.rate) {
			out = append(out, r.rate)
		}
	}
	return out
}

func slicesMax(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}

// replicationTargets adds the replication targets to the summary.
func (b *bench) replicationTargets(p func(string, ...any)) {
	var best *replicatedRun
	for i := range b.repl {
		if best == nil || b.repl[i].report.Totals.AcksPerSec > best.report.Totals.AcksPerSec {
			best = &b.repl[i]
		}
	}
	if best != nil {
		p("| replicated acks/s, 3 nodes on these cores with the generator | ≥ 8,800 (the stage-1 single node's) | %.0f at %.0f msg/s offered (p99 %.1f ms, %.0f µs node CPU per ack) |\n",
			best.report.Totals.AcksPerSec, best.rate, best.report.Latency["send_ack"].P99, best.cpuPerAckUS)
		var p99s []float64
		for _, r := range b.repl {
			if r.rate == 2000 {
				p99s = append(p99s, r.report.Latency["send_ack"].P99)
			}
		}
		if len(p99s) > 0 {
			p("| replicated p99 ack at 2,000 msg/s (median of %d runs) | ≤ 20 ms | %.1f ms |\n", len(p99s), median(p99s))
		}
	}
	for _, fr := range b.chaos {
		if fr.kind == chaos.FaultKill && fr.report != nil {
			var p99s []float64
			for _, f := range fr.report.Faults {
				p99s = append(p99s, f.Unavailability.P99MS)
			}
			lost := "check not run"
			if fr.report.Check != nil {
				lost = fr.report.Check.Summary()
			}
			p("| kill -9 of a shard leader: unavailability of its channels, p99 | ≤ 2 s, nothing lost or duplicated | %.0f ms (median of %d kills); %s |\n", median(p99s), len(p99s), lost)
		}
	}
}
