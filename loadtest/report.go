package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a run's outcome; it is written as report.json.
type Report struct {
	RunID    string       `json:"run_id"`
	Scenario string       `json:"scenario"`
	Command  string       `json:"command,omitempty"`
	Config   ReportConfig `json:"config"`
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	// OK is whether the run passed: it completed and everything in it was
	// accounted for and verified. Problems says why not.
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	Setup    struct {
		Sessions  int `json:"sessions"`
		Connected int `json:"connected"`
		// Failed counts sessions that could not connect to any target,
		// or whose channel.create or channel.join failed.
		Failed  int     `json:"failed"`
		Seconds float64 `json:"seconds"`
	} `json:"setup"`
	Totals Totals `json:"totals"`
	// Latency is each metric's distribution over the measured window (the
	// run after the warmup), in milliseconds.
	Latency map[string]Summary `json:"latency"`
	// Ops counts replies by op and result code ("ok" or an error code).
	Ops map[string]map[string]int64 `json:"ops"`
	// Series has one point per interval from the first send on.
	Series []Point `json:"series"`
	// Memory has soak's memory samples.
	Memory    []MemorySample `json:"memory,omitempty"`
	Oracle    Verdict        `json:"oracle"`
	Generator Generator      `json:"generator"`
}

// ReportConfig is the part of the config a report repeats.
type ReportConfig struct {
	Targets      []string `json:"targets"`
	Sessions     int      `json:"sessions"`
	Channels     int      `json:"channels"`
	Senders      int      `json:"senders,omitempty"`
	Rate         float64  `json:"rate"`
	DurationS    float64  `json:"duration_s"`
	WarmupS      float64  `json:"warmup_s"`
	Seed         uint64   `json:"seed"`
	Ramp         float64  `json:"ramp"`
	MessageBytes int      `json:"message_bytes"`
}

// Totals are the run's counts and rates. Every scheduled send ends as
// exactly one of acked, rate_limited, failed (an error reply, or its
// session's setup failed) or unanswered (no reply when the drain ended).
// Rates are over the measured window: sends intended after the warmup,
// divided by the time from the window's start to the last of their
// acknowledgements (deliveries), so a server that falls behind shows a
// lower rate, not the offered one.
type Totals struct {
	Scheduled   int64 `json:"scheduled"`
	Sent        int64 `json:"sent"`
	Acked       int64 `json:"acked"`
	RateLimited int64 `json:"rate_limited"`
	Failed      int64 `json:"failed"`
	// Resent counts operations sent again after the connection was down
	// or dropped, or the reply was unavailable (each is still settled
	// once, measured from its intended time).
	Resent     int64 `json:"resent"`
	Deliveries int64 `json:"deliveries"`
	Errors     int64 `json:"errors"`
	Resumed    int64 `json:"resumed,omitempty"`
	Unanswered int64 `json:"unanswered"`
	// History (soak) and Reactions (liveroom) account for the other
	// scheduled operations in the same way.
	History   Tally `json:"history,omitzero"`
	Reactions Tally `json:"reactions,omitzero"`
	// OfferedPerSec is the sends the schedule held in the measured
	// window per second (Poisson: near Rate, not exactly).
	OfferedPerSec    float64 `json:"offered_per_sec"`
	AcksPerSec       float64 `json:"acks_per_sec"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
}

// Tally accounts for one kind of scheduled operation: each ends as
// exactly one of ok, rate_limited, failed, skipped (a reaction scheduled
// before any message was acknowledged) or unanswered.
type Tally struct {
	Scheduled   int64 `json:"scheduled"`
	OK          int64 `json:"ok"`
	RateLimited int64 `json:"rate_limited"`
	Failed      int64 `json:"failed"`
	Skipped     int64 `json:"skipped,omitempty"`
	Unanswered  int64 `json:"unanswered"`
}

// Point is one interval of the run.
type Point struct {
	T            float64 `json:"t_s"` // end of the interval, seconds after the first send
	Sessions     int64   `json:"sessions"`
	SentPerSec   float64 `json:"sent_per_sec"`
	AckedPerSec  float64 `json:"acked_per_sec"`
	DelivPerSec  float64 `json:"deliveries_per_sec"`
	ErrorsPerSec float64 `json:"errors_per_sec"`
	Ack          Summary `json:"send_ack"`
	Delivered    Summary `json:"send_delivered"`
}

// MemorySample is soak's view of memory at one time.
type MemorySample struct {
	T             float64      `json:"t_s"`
	GenHeapBytes  uint64       `json:"generator_heap_bytes"`
	GenGoroutines int          `json:"generator_goroutines"`
	Nodes         []NodeMemory `json:"nodes,omitempty"`
}

// NodeMemory is one node's memory as its /metrics reports it.
type NodeMemory struct {
	URL        string  `json:"url"`
	RSSBytes   float64 `json:"rss_bytes"`
	HeapBytes  float64 `json:"heap_inuse_bytes"`
	Goroutines float64 `json:"goroutines"`
}

// Generator describes the machine the load came from.
type Generator struct {
	GoVersion string `json:"go_version"`
	CPUs      int    `json:"cpus"`
	OS        string `json:"os"`
}

// sample flushes the histograms every interval, adds a point to the series
// once sending started, and prints the progress line.
func (r *runner) sample(ctx context.Context) {
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	var last struct{ sent, acked, deliv, errs int64 }
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		secs := now.Sub(lastAt).Seconds()
		lastAt = now
		win := r.rec.flush()
		_, errs := r.ops.snapshot()
		deliv, _, _ := r.delivery.totals()
		sent, acked := r.sent.Load(), r.sends.ok.Load()
		start := r.sendStart.Load()
		if start == 0 || r.now() < time.Duration(start) {
			if r.cfg.Progress != nil {
				fmt.Fprintf(r.cfg.Progress, "[setup %5.1fs] sessions %d/%d connected, errors %d\n", r.now().Seconds(), r.connected.Load(), r.cfg.Sessions, errs)
			}
			last.errs = errs
			continue
		}
		p := Point{
			T:            (r.now() - time.Duration(start)).Seconds(),
			Sessions:     r.connectedNow(),
			SentPerSec:   float64(sent-last.sent) / secs,
			AckedPerSec:  float64(acked-last.acked) / secs,
			DelivPerSec:  float64(deliv-last.deliv) / secs,
			ErrorsPerSec: float64(errs-last.errs) / secs,
			Ack:          win[MetricAck],
			Delivered:    win[MetricDelivered],
		}
		last.sent, last.acked, last.deliv, last.errs = sent, acked, deliv, errs
		r.series = append(r.series, p)
		if r.cfg.Progress != nil {
			tot := r.rec.totals()
			fmt.Fprintf(r.cfg.Progress, "[%6.1fs] sessions %d  sent %.0f/s  acked %.0f/s  delivered %.0f/s  ack p99 %s (so far %s)  delivered p99 %s (so far %s)  errors %d\n",
				p.T, p.Sessions, p.SentPerSec, p.AckedPerSec, p.DelivPerSec,
				FormatMS(p.Ack.P99), FormatMS(tot[MetricAck].P99), FormatMS(p.Delivered.P99), FormatMS(tot[MetricDelivered].P99), errs)
		}
	}
}

// connectedNow counts sessions that have a connection now.
func (r *runner) connectedNow() int64 {
	var n int64
	for _, s := range r.sessions {
		if s != nil && s.cl.Connected() {
			n++
		}
	}
	return n
}

// FormatMS writes a latency in milliseconds for people: "-" for none,
// two decimals under 10 ms, seconds from 1 s.
func FormatMS(ms float64) string {
	switch {
	case ms == 0:
		return "-"
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.2fs", ms/1000)
}

// finishReport fills the report once the run is over.
func (r *runner) finishReport(rep *Report) {
	rep.Finished = time.Now().UTC()
	rep.RunID = r.runID
	rep.Scenario = r.cfg.Scenario
	rep.Config = ReportConfig{
		Targets: r.cfg.Targets, Sessions: r.cfg.Sessions, Channels: len(r.layout.ChannelIDs), Rate: r.cfg.Rate,
		DurationS: r.cfg.Duration.Seconds(), WarmupS: r.cfg.Warmup.Seconds(), Seed: r.cfg.Seed, Ramp: r.cfg.Ramp,
		MessageBytes: r.cfg.MessageBytes,
	}
	if r.cfg.Scenario == ScenarioLiveroom {
		rep.Config.Senders = len(r.layout.Senders[0])
	}
	rep.Setup.Sessions = r.cfg.Sessions
	r.rec.flush()
	tot := r.rec.totals()
	rep.Latency = make(map[string]Summary, numMetrics)
	for m := range numMetrics {
		rep.Latency[m.String()] = tot[m]
	}
	var errs int64
	rep.Ops, errs = r.ops.snapshot()
	deliveries, measuredDeliveries, lastDelivery := r.delivery.totals()
	sends := r.sends.report()
	rep.Totals = Totals{
		Scheduled: sends.Scheduled, Sent: r.sent.Load(), Acked: sends.OK, RateLimited: sends.RateLimited, Failed: sends.Failed,
		Resent: r.resent.Load(), Deliveries: deliveries, Errors: errs, Resumed: r.resumed.Load(), Unanswered: sends.Unanswered,
		History: r.histories.report(), Reactions: r.reactions.report(),
	}
	if r.cfg.Duration > 0 {
		rep.Totals.OfferedPerSec = float64(r.measuredSent.Load()) / r.cfg.Duration.Seconds()
	}
	window := r.warmupEnd()
	if last := time.Duration(r.lastAck.Load()); last > window {
		rep.Totals.AcksPerSec = float64(r.measuredAcks.Load()) / max(last-window, r.cfg.Duration).Seconds()
	}
	if last := time.Duration(lastDelivery); last > window {
		rep.Totals.DeliveriesPerSec = float64(measuredDeliveries) / max(last-window, r.cfg.Duration).Seconds()
	}
	rep.Series = r.series
	rep.Memory = r.memory
	rep.Oracle = r.orc.verdict()
	rep.Oracle.FinalChecks, _ = r.checks.snapshot()
	rep.Generator = Generator{GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	rep.Problems = rep.problems()
	rep.OK = len(rep.Problems) == 0
}

// problems lists why the run fails: anything it could not account for or
// verify. A rate_limited reply is the server pacing a client, as the
// protocol allows: it is counted, and fails nothing.
func (rep *Report) problems() []string {
	var out []string
	add := func(n int64, format string) {
		if n > 0 {
			out = append(out, fmt.Sprintf(format, n))
		}
	}
	add(int64(rep.Setup.Failed), "%d sessions failed to set up (connect to every target, channel.create or channel.join)")
	t := rep.Totals
	add(t.Failed, "%d sends failed")
	add(t.Unanswered, "%d sends unanswered when the drain ended")
	add(t.History.Failed, "%d history reads failed")
	add(t.History.Unanswered, "%d history reads unanswered when the drain ended")
	add(t.Reactions.Failed, "%d reactions failed")
	add(t.Reactions.Unanswered, "%d reactions unanswered when the drain ended")
	if !rep.Oracle.OK {
		out = append(out, "the oracle found "+rep.Oracle.counts())
	}
	return out
}

// WriteSummary writes the final summary table and the oracle's verdict.
func (rep *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "\nswitchboard loadtest: %s, run %s, %d sessions (%d connected), %d channels, %.0f msg/s offered for %.0fs after %.0fs warmup\n",
		rep.Scenario, rep.RunID, rep.Setup.Sessions, rep.Setup.Connected, rep.Config.Channels, rep.Config.Rate, rep.Config.DurationS, rep.Config.WarmupS)
	if rep.Setup.Failed > 0 {
		fmt.Fprintf(w, "%d sessions failed to set up\n", rep.Setup.Failed)
	}
	t := rep.Totals
	fmt.Fprintf(w, "sends: scheduled %d, acked %d, rate limited %d, failed %d, unanswered %d (resent %d); deliveries %d; measured %.0f acks/s, %.0f deliveries/s\n",
		t.Scheduled, t.Acked, t.RateLimited, t.Failed, t.Unanswered, t.Resent, t.Deliveries, t.AcksPerSec, t.DeliveriesPerSec)
	for _, row := range rep.tallies() {
		if row.T != (Tally{}) {
			fmt.Fprintf(w, "%s: scheduled %d, ok %d, rate limited %d, failed %d, skipped %d, unanswered %d\n",
				row.Name, row.T.Scheduled, row.T.OK, row.T.RateLimited, row.T.Failed, row.T.Skipped, row.T.Unanswered)
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency (ms)\tcount\tmin\tp50\tp90\tp99\tp99.9\tmax\t")
	for m := range numMetrics {
		s := rep.Latency[m.String()]
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", m, s.Count, s.Min, s.P50, s.P90, s.P99, s.P999, s.Max)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "op\tresult\tcount")
	for _, op := range sortedKeys(rep.Ops) {
		for _, code := range sortedKeys(rep.Ops[op]) {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", op, code, rep.Ops[op][code])
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, rep.Oracle.Summary())
	for _, v := range rep.Oracle.Violations {
		fmt.Fprintln(w, "  "+v.String())
	}
	if n := rep.Oracle.total(); n > int64(len(rep.Oracle.Violations)) {
		fmt.Fprintf(w, "  ... and %d more\n", n-int64(len(rep.Oracle.Violations)))
	}
	fmt.Fprintln(w, rep.Result())
}

// tallies are the scheduled operations other than sends.
func (rep *Report) tallies() []tallyRow {
	return []tallyRow{{"history reads", rep.Totals.History}, {"reactions", rep.Totals.Reactions}}
}

// Result is the run's outcome in one line.
func (rep *Report) Result() string {
	if rep.OK {
		return "result: OK"
	}
	return "result: FAILED: " + strings.Join(rep.Problems, "; ")
}

func (v Verdict) total() int64 {
	var n int64
	for _, c := range v.Counts {
		n += c
	}
	return n
}

// Summary is the verdict in one line.
func (v Verdict) Summary() string {
	checked := fmt.Sprintf("%d channels, %d watchers, %d acknowledged messages, %d deliveries, %d history messages re-read",
		v.Channels, v.Watchers, v.Acked, v.Delivered, v.HistoryMessages)
	if v.ReactionsAcked > 0 {
		checked += fmt.Sprintf(", %d acknowledged reactions", v.ReactionsAcked)
	}
	if v.ResetSkipped > 0 {
		checked += fmt.Sprintf(", %d seqs skipped by resets", v.ResetSkipped)
	}
	if v.OK {
		return "oracle: OK — " + checked
	}
	return "oracle: FAILED (" + v.counts() + ") — " + checked
}

// counts lists the violations by kind: "gap 2, unverified 1".
func (v Verdict) counts() string {
	parts := make([]string, 0, len(v.Counts))
	for _, k := range sortedKeys(v.Counts) {
		parts = append(parts, fmt.Sprintf("%s %d", k, v.Counts[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// WriteFiles writes report.json and report.html into dir.
func (rep *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
