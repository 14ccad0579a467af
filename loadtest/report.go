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
	Setup    struct {
		Sessions  int     `json:"sessions"`
		Connected int     `json:"connected"`
		Seconds   float64 `json:"seconds"`
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

// Totals are the run's counts and rates. Rates are over the measured
// window: sends intended after the warmup, divided by the time from the
// window's start to the last of their acknowledgements (deliveries), so a
// server that falls behind shows a lower rate, not the offered one.
type Totals struct {
	Scheduled  int64 `json:"scheduled"`
	Sent       int64 `json:"sent"`
	Acked      int64 `json:"acked"`
	Failed     int64 `json:"failed"`
	Deliveries int64 `json:"deliveries"`
	Errors     int64 `json:"errors"`
	Resumed    int64 `json:"resumed,omitempty"`
	Unanswered int64 `json:"unanswered"`
	// OfferedPerSec is the sends the schedule held in the measured
	// window per second (Poisson: near Rate, not exactly).
	OfferedPerSec    float64 `json:"offered_per_sec"`
	AcksPerSec       float64 `json:"acks_per_sec"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
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
		sent, acked, deliv := r.sent.Load(), r.acked.Load(), r.deliveries.Load()
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
				fmtMS(p.Ack.P99), fmtMS(tot[MetricAck].P99), fmtMS(p.Delivered.P99), fmtMS(tot[MetricDelivered].P99), errs)
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

func fmtMS(ms float64) string {
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
	rep.Totals = Totals{
		Scheduled: r.scheduled.Load(), Sent: r.sent.Load(), Acked: r.acked.Load(), Failed: r.failed.Load(),
		Deliveries: r.deliveries.Load(), Errors: errs, Resumed: r.resumed.Load(), Unanswered: max(r.outstanding.Load(), 0),
	}
	if r.cfg.Duration > 0 {
		rep.Totals.OfferedPerSec = float64(r.measuredSent.Load()) / r.cfg.Duration.Seconds()
	}
	window := r.warmupEnd()
	if last := time.Duration(r.lastAck.Load()); last > window {
		rep.Totals.AcksPerSec = float64(r.measuredAcks.Load()) / max(last-window, r.cfg.Duration).Seconds()
	}
	if last := time.Duration(r.lastDelivery.Load()); last > window {
		rep.Totals.DeliveriesPerSec = float64(r.measuredDeliveries.Load()) / max(last-window, r.cfg.Duration).Seconds()
	}
	rep.Series = r.series
	rep.Memory = r.memory
	rep.Oracle = r.orc.verdict()
	rep.Generator = Generator{GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
}

// WriteSummary writes the final summary table and the oracle's verdict.
func (rep *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "\nswitchboard loadtest: %s, run %s, %d sessions (%d connected), %d channels, %.0f msg/s offered for %.0fs after %.0fs warmup\n",
		rep.Scenario, rep.RunID, rep.Setup.Sessions, rep.Setup.Connected, rep.Config.Channels, rep.Config.Rate, rep.Config.DurationS, rep.Config.WarmupS)
	t := rep.Totals
	fmt.Fprintf(w, "sent %d, acked %d, failed %d, unanswered %d, deliveries %d; measured %.0f acks/s, %.0f deliveries/s\n\n",
		t.Sent, t.Acked, t.Failed, t.Unanswered, t.Deliveries, t.AcksPerSec, t.DeliveriesPerSec)
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
	if v.OK {
		return "oracle: OK — " + checked
	}
	var parts []string
	for _, k := range sortedKeys(v.Counts) {
		parts = append(parts, fmt.Sprintf("%s %d", k, v.Counts[k]))
	}
	return "oracle: FAILED (" + strings.Join(parts, ", ") + ") — " + checked
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
