package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchboard-chat/switchboard/loadtest"
)

// Report is a chaos run's outcome; it is written as report.json.
type Report struct {
	// OK is whether the run passed: every fault was injected and
	// recovered from, every channel checked, and nothing broken found.
	// Problems says why not.
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	// Notes are facts worth knowing that fail nothing (planned faults
	// left out because the load ended first).
	Notes    []string     `json:"notes,omitempty"`
	Command  string       `json:"command,omitempty"`
	Config   ReportConfig `json:"config"`
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	// Plan is the seeded plan; Faults what happened.
	Plan   []Planned `json:"plan"`
	Faults []Fault   `json:"faults"`
	// Check is the end-of-run check of every channel's history against
	// every acknowledgement (absent when the run ended before it).
	Check    *Verdict `json:"check,omitempty"`
	ReadFrom string   `json:"read_from,omitempty"`
	// Sends counts the load's sends by how they ended ("ok" or an error
	// code); Series has one point per second from the first send.
	Sends  map[string]int `json:"sends"`
	Series []Second       `json:"series"`
	Nodes  []NodeReport   `json:"nodes"`
	// Events is the harness's log of what it did.
	Events []string `json:"events"`
	// Load is the load test's own report (its oracle checks delivery to
	// every watcher).
	Load *loadtest.Report `json:"load,omitempty"`
}

// ReportConfig is the part of the config a report repeats.
type ReportConfig struct {
	Bin            string   `json:"bin"`
	Out            string   `json:"out"`
	Nodes          int      `json:"nodes"`
	WarmupS        float64  `json:"warmup_s"`
	DurationS      float64  `json:"duration_s"`
	Faults         []string `json:"faults"`
	Seed           uint64   `json:"seed"`
	FaultIntervalS float64  `json:"fault_interval_s"`
	DownS          float64  `json:"down_s"`
	PauseS         float64  `json:"pause_s"`
	Detection      string   `json:"failure_detection"`
	DrainTimeoutS  float64  `json:"drain_timeout_s"`
	WipeIdentity   string   `json:"wipe_identity"`
	ServeArgs      []string `json:"serve_args,omitempty"`
	Sessions       int      `json:"sessions"`
	Channels       int      `json:"channels"`
	Rate           float64  `json:"rate"`
	MessageBytes   int      `json:"message_bytes"`
}

// Second is one second of the load, by the sends intended in it.
type Second struct {
	T      float64        `json:"t_s"` // start of the second, from the first send
	Sent   int            `json:"sent"`
	Acked  int            `json:"acked"`
	Errors map[string]int `json:"errors,omitempty"` // by code
	// Ack latency (intended time to acknowledgement) of the second's
	// acknowledged sends, in milliseconds.
	AckP50 float64 `json:"ack_p50_ms"`
	AckP99 float64 `json:"ack_p99_ms"`
	AckMax float64 `json:"ack_max_ms"`
}

// Unavailability is what the load saw while a fault lasted: the sends
// intended from its injection until the cluster recovered. A channel's
// unavailability is the longest any of those sends to it waited for its
// answer (acknowledgement or error); the figures are over the channels
// that had such sends.
type Unavailability struct {
	Sends    int     `json:"sends"`
	Failed   int     `json:"failed"`
	Channels int     `json:"channels"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
	MaxMS    float64 `json:"max_ms"`
	Worst    string  `json:"worst_channel,omitempty"`
}

// NodeReport is one place of the cluster.
type NodeReport struct {
	Node   string   `json:"node"`
	Names  []string `json:"names"`
	Listen string   `json:"listen"`
	Gossip string   `json:"gossip"`
	Log    string   `json:"log"`
	Data   string   `json:"data"`
	PIDs   []int    `json:"pids"`
}

func (rep *Report) config(c *Config) {
	rep.Command = c.Command
	rep.Config = ReportConfig{Bin: c.Bin, Out: c.Out, Nodes: c.Nodes, WarmupS: c.Warmup.Seconds(), DurationS: c.Duration.Seconds(),
		Faults: c.Faults, Seed: c.Seed, FaultIntervalS: c.FaultInterval.Seconds(), DownS: c.Down.Seconds(), PauseS: c.Pause.Seconds(),
		Detection: c.Detection, DrainTimeoutS: c.DrainTimeout.Seconds(), WipeIdentity: c.WipeIdentity, ServeArgs: c.ServeArgs,
		Sessions: c.Sessions, Channels: c.Channels, Rate: c.Rate, MessageBytes: c.MessageBytes}
}

func (c *cluster) report() []NodeReport {
	var out []NodeReport
	for _, n := range c.nodes {
		out = append(out, NodeReport{Node: n.base, Names: n.names, Listen: n.listen, Gossip: n.gossip, Log: n.log, Data: n.data, PIDs: n.pids})
	}
	return out
}

// finish fills the figures and the verdict once the run is over.
func (rep *Report) finish(c *cluster, rec *recorder, origin time.Time, interrupted bool) {
	rep.Finished = time.Now().UTC()
	c.mu.Lock()
	rep.Events = slices.Clone(c.events)
	unexpected := slices.Clone(c.unexpected)
	c.mu.Unlock()
	outcomes := rec.all()
	end := time.Duration(0)
	if !origin.IsZero() {
		end = time.Since(origin)
	}
	rep.Sends, rep.Series = series(outcomes)
	for i := range rep.Faults {
		f := &rep.Faults[i]
		to := f.RecoveredS
		if to == 0 {
			to = end.Seconds()
		}
		f.Unavailability = unavailability(outcomes, f.AtS, to)
	}

	p := rep.Problems // the run's own, so far
	if interrupted {
		// What failed after the interrupt failed because of it.
		rep.Problems = append([]string{"interrupted: the run and its checks are incomplete"}, unexpected...)
		return
	}
	p = append(p, unexpected...)
	for _, f := range rep.Faults {
		if f.Error != "" {
			p = append(p, fmt.Sprintf("fault %d (%s of %s): %s", f.N, f.Kind, f.Node, f.Error))
		}
	}
	if n := len(rep.Plan) - len(rep.Faults); n > 0 && len(p) == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d planned faults were not injected: recovering from the earlier ones took until the load ended", n))
	}
	switch {
	case rep.Check == nil:
		p = append(p, "the channels were not checked")
	case rep.Check != nil && !rep.Check.OK:
		p = append(p, "the check found "+countList(rep.Check.Counts))
	}
	if l := rep.Load; l != nil {
		if l.Setup.Failed > 0 {
			p = append(p, fmt.Sprintf("%d load sessions failed to set up", l.Setup.Failed))
		}
		if !l.Oracle.OK {
			p = append(p, "the load's delivery oracle found "+oracleCounts(l.Oracle))
		}
	}
	rep.Problems = p
	rep.OK = len(p) == 0
}

func oracleCounts(v loadtest.Verdict) string {
	m := make(map[string]int, len(v.Counts))
	for k, n := range v.Counts {
		m[k] = int(n)
	}
	return countList(m)
}

// series counts sends by code and per second of intended time.
func series(outcomes []outcome) (map[string]int, []Second) {
	byCode := map[string]int{}
	var secs []Second
	lat := map[int][]float64{}
	for _, o := range outcomes {
		byCode[o.code]++
		if o.intended < 0 {
			continue
		}
		i := int(o.intended / time.Second)
		for len(secs) <= i {
			secs = append(secs, Second{T: float64(len(secs))})
		}
		s := &secs[i]
		s.Sent++
		if o.code == "ok" {
			s.Acked++
			lat[i] = append(lat[i], float64(o.settled-o.intended)/float64(time.Millisecond))
			continue
		}
		if s.Errors == nil {
			s.Errors = map[string]int{}
		}
		s.Errors[o.code]++
	}
	for i, l := range lat {
		slices.Sort(l)
		secs[i].AckP50, secs[i].AckP99, secs[i].AckMax = quantile(l, 0.5), quantile(l, 0.99), l[len(l)-1]
	}
	return byCode, secs
}

// unavailability measures the sends intended in [from, to] seconds.
func unavailability(outcomes []outcome, from, to float64) Unavailability {
	var u Unavailability
	worst := map[string]float64{}
	for _, o := range outcomes {
		if t := o.intended.Seconds(); t < from || t > to {
			continue
		}
		u.Sends++
		if o.code != "ok" {
			u.Failed++
		}
		w := float64(o.settled-o.intended) / float64(time.Millisecond)
		if w0, ok := worst[o.channel]; !ok || w > w0 {
			worst[o.channel] = w
		}
	}
	var waits []float64
	for ch, w := range worst {
		waits = append(waits, w)
		if w > u.MaxMS || u.Worst == "" {
			u.MaxMS, u.Worst = w, ch
		}
	}
	slices.Sort(waits)
	u.Channels = len(waits)
	u.P50MS, u.P99MS = quantile(waits, 0.5), quantile(waits, 0.99)
	return u
}

// quantile of sorted values (nearest rank); 0 for none.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// WriteSummary writes the run's outcome as text.
func (rep *Report) WriteSummary(w io.Writer) {
	c := rep.Config
	fmt.Fprintf(w, "\nswitchboard chaos: %d nodes, seed %d, faults %s, %.0fs of load after %.0fs warmup (%d sessions, %d channels, %.0f msg/s)\n\n",
		c.Nodes, c.Seed, strings.Join(c.Faults, ","), c.DurationS, c.WarmupS, c.Sessions, c.Channels, c.Rate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tkind\tnode\tat\tdown\trecovered\tunavailable p50/p99/max\tsends failed\ttarget")
	for _, f := range rep.Faults {
		rec := "-"
		if f.RecoveredS > 0 {
			rec = fmt.Sprintf("+%.1fs", f.RecoveredS-f.AtS)
		}
		down := "-"
		if f.BackS > 0 {
			down = fmt.Sprintf("%.1fs", f.BackS-f.DownS)
		}
		u := f.Unavailability
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.1fs\t%s\t%s\t%s/%s/%s\t%d of %d\t%s\n", f.N, f.Kind, nodeLabel(f), f.AtS, down, rec,
			loadtest.FormatMS(u.P50MS), loadtest.FormatMS(u.P99MS), loadtest.FormatMS(u.MaxMS), u.Failed, u.Sends, f.Target)
	}
	tw.Flush()
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	fmt.Fprintf(w, "\nsends: %s\n", codeList(rep.Sends))
	if rep.Check != nil {
		fmt.Fprintln(w, rep.Check.Summary())
		for _, v := range rep.Check.Violations {
			fmt.Fprintln(w, "  "+v.String())
		}
		if n := total(rep.Check.Counts); n > len(rep.Check.Violations) {
			fmt.Fprintf(w, "  ... and %d more\n", n-len(rep.Check.Violations))
		}
	}
	if rep.Load != nil {
		fmt.Fprintln(w, "delivery "+rep.Load.Oracle.Summary())
		for _, v := range rep.Load.Oracle.Violations {
			fmt.Fprintln(w, "  "+v.String())
		}
	}
	fmt.Fprintln(w, rep.Result())
}

// Result is the run's outcome in one line.
func (rep *Report) Result() string {
	if rep.OK {
		return "result: OK"
	}
	return "result: FAILED: " + strings.Join(rep.Problems, "; ")
}

// timeoutsLogged counts the requests the nodes' logs say timed out
// (cluster: "requests timed out", requests=N), and says where the first
// was: on which node, to which, when.
func timeoutsLogged(nodes []NodeReport) (n int, first string) {
	var at string
	for _, nd := range nodes {
		f, err := os.Open(nd.Log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, `msg="requests timed out"`) {
				continue
			}
			k, _ := strconv.Atoi(logField(line, "requests"))
			n += k
			if t := logField(line, "time"); at == "" || t < at {
				at = t
				first = fmt.Sprintf("%s to %s at %s", nd.Node, logField(line, "node"), t)
			}
		}
		f.Close()
	}
	return n, first
}

// logField is the value of key in a log line of key=value pairs ("" when
// it has none).
func logField(line, key string) string {
	i := strings.Index(" "+line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v, _, _ := strings.Cut(line[i+len(key)+1:], " ")
	return v
}

func nodeLabel(f Fault) string {
	s := f.Node
	if f.Identity != "" && f.Identity != f.Node {
		s += " (" + f.Identity + ")"
	}
	if f.NewIdentity != "" {
		s += " → " + f.NewIdentity
	}
	if len(f.With) > 0 {
		s += " with " + strings.Join(f.With, ", ")
	}
	if f.Direction != "" {
		s += " (" + f.Direction + ")"
	}
	if f.DelayMS > 0 {
		s += fmt.Sprintf(" (+%gms)", f.DelayMS)
	}
	return s
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// codeList lists counts by code, ok first: "ok 5000, unavailable 3".
func codeList(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	s := ""
	if n, ok := m["ok"]; ok {
		s = fmt.Sprintf("ok %d", n)
	}
	rest := map[string]int{}
	for k, n := range m {
		if k != "ok" {
			rest[k] = n
		}
	}
	if len(rest) > 0 {
		if s != "" {
			s += ", "
		}
		s += countList(rest)
	}
	return s
}

// Evidence is what the check judged: every acknowledgement and every
// history read back, and the sends that were not acknowledged. It is
// written as evidence.json, so a failed run can be examined, and checked
// again with Check.
type Evidence struct {
	Acks      []Ack     `json:"acks"`
	Histories []History `json:"histories"`
	Unacked   []Unacked `json:"unacknowledged"`
}

// Unacked is a send that ended without an acknowledgement. Times are
// from the first send.
type Unacked struct {
	Channel  string        `json:"channel"`
	ClientID string        `json:"client_id"`
	Sender   string        `json:"sender"`
	Code     string        `json:"code"`
	Intended time.Duration `json:"intended_ns"`
	Settled  time.Duration `json:"settled_ns"`
}

func writeEvidence(dir string, e Evidence) error {
	return writeJSON(filepath.Join(dir, "evidence.json"), e, false)
}

// ReadEvidence reads a run's evidence.json.
func ReadEvidence(dir string) (Evidence, error) {
	var e Evidence
	b, err := os.ReadFile(filepath.Join(dir, "evidence.json"))
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(b, &e)
}

// WriteFiles writes report.json and report.html into dir.
func (rep *Report) WriteFiles(dir string) error {
	if err := writeJSON(filepath.Join(dir, "report.json"), rep, true); err != nil {
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

func writeJSON(path string, v any, indent bool) error {
	var b []byte
	var err error
	if indent {
		b, err = json.MarshalIndent(v, "", "  ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
