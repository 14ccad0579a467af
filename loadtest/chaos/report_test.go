package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

func TestUnavailabilityAndSeries(t *testing.T) {
	ms := time.Millisecond
	outcomes := []outcome{
		{channel: "a", code: "ok", intended: 100 * ms, settled: 105 * ms},
		{channel: "a", code: "ok", intended: 1200 * ms, settled: 3200 * ms}, // waited 2 s
		{channel: "b", code: "ok", intended: 1300 * ms, settled: 1310 * ms},
		{channel: "b", code: "timeout", intended: 1400 * ms, settled: 16400 * ms},
		{channel: "c", code: "ok", intended: 5 * time.Second, settled: 5*time.Second + ms},
	}
	u := unavailability(outcomes, 1, 2)
	if u.Sends != 3 || u.Failed != 1 || u.Channels != 2 || u.MaxMS != 15000 || u.Worst != "b" || u.P50MS != 2000 {
		t.Fatalf("unavailability %+v", u)
	}
	byCode, secs := series(outcomes)
	if byCode["ok"] != 4 || byCode["timeout"] != 1 || len(secs) != 6 {
		t.Fatalf("series: %v, %d seconds", byCode, len(secs))
	}
	if s := secs[1]; s.Sent != 3 || s.Acked != 2 || s.Errors["timeout"] != 1 || s.AckMax != 2000 || s.AckP50 != 10 {
		t.Fatalf("second 1: %+v", s)
	}
	if s := secs[3]; s.Sent != 0 {
		t.Fatalf("second 3: %+v", s)
	}
}

func sampleReport() *Report {
	rep := &Report{OK: false, Problems: []string{"the check found lost 1"},
		Config:  ReportConfig{Nodes: 3, Faults: Kinds, Seed: 9, Sessions: 10, Channels: 2, Rate: 10, Detection: "fast"},
		Started: time.Now(), Finished: time.Now()}
	for i, k := range Kinds {
		at := float64(2 + 3*i)
		rep.Faults = append(rep.Faults, Fault{Planned: Planned{N: i + 1, Kind: k, At: time.Duration(at * float64(time.Second))},
			Node: "n" + string(rune('1'+i%3)), Identity: "n1", AtS: at, DownS: at + 0.1, BackS: at + 1, RecoveredS: at + 1.5,
			Target: "seeded node", Unavailability: Unavailability{Sends: 5, Channels: 2, P50MS: 3, P99MS: 900, MaxMS: 900, Worst: "room<1>"}})
	}
	rep.Faults[2].Node, rep.Faults[2].NewIdentity = "n1", "n1-w1"
	rep.Check = &Verdict{Counts: map[string]int{ViolationLost: 1}, Channels: 2, Acked: 40,
		Violations: []Violation{{Kind: ViolationLost, Channel: "room<1>", Segment: 7, ClientID: "x.1", Detail: "acknowledged, missing from history"}}}
	rep.Sends = map[string]int{"ok": 40, "unavailable": 2}
	_, rep.Series = series([]outcome{{channel: "a", code: "ok", intended: time.Second, settled: time.Second + time.Millisecond},
		{channel: "a", code: "unavailable", intended: 9 * time.Second, settled: 10 * time.Second}})
	rep.Nodes = []NodeReport{{Node: "n1", Names: []string{"n1", "n1-w1"}, PIDs: []int{10, 11}}, {Node: "n2", Names: []string{"n2"}}, {Node: "n3", Names: []string{"n3"}}}
	return rep
}

func TestHTMLReport(t *testing.T) {
	rep := sampleReport()
	var b bytes.Buffer
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	plots := map[string]bool{}
	var bars int
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		for _, a := range n.Attr {
			if a.Key == "data-plot" {
				plots[a.Val] = true
			}
			if a.Key == "data-fault" {
				bars++
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	for _, p := range []string{"timeline", "throughput", "errors", "latency"} {
		if !plots[p] {
			t.Errorf("no %s plot", p)
		}
	}
	if bars != len(rep.Faults) {
		t.Errorf("%d fault bars for %d faults", bars, len(rep.Faults))
	}
	page := b.String()
	for _, want := range []string{"The run failed:", "the check found lost 1", "room&lt;1&gt;", "n1 → n1-w1", "n2 (n1)", "900ms"} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if strings.Contains(page, "room<1>") {
		t.Error("a channel id reached the page unescaped")
	}
	var sum bytes.Buffer
	rep.WriteSummary(&sum)
	for _, want := range []string{"lost: channel room<1> segment 7 client_id x.1", "result: FAILED: the check found lost 1", "sends: ok 40, unavailable 2"} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum.String())
		}
	}
	// The JSON keeps every field a script needs.
	j, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"ok":false`, `"faults":[`, `"unavailability":{`, `"p99_ms":900`, `"check":{`, `"series":[`, `"recovered_s":3.5`} {
		if !bytes.Contains(j, []byte(key)) {
			t.Errorf("report.json lacks %s", key)
		}
	}
}

func TestQuantile(t *testing.T) {
	if q := quantile(nil, 0.5); q != 0 {
		t.Fatal(q)
	}
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if quantile(v, 0.5) != 5 || quantile(v, 0.99) != 10 || quantile(v, 0) != 1 {
		t.Fatal("nearest rank")
	}
}

func TestRedact(t *testing.T) {
	got := Redact([]string{"--api-key", "k1", "--seed=3", "--serve-args", "--replicas 3 --auth-secret s3cret --dev-auth", "-secret=x", "--serve-args=--api-key=k2"})
	want := []string{"--api-key", "REDACTED", "--seed=3", "--serve-args", "--replicas 3 --auth-secret REDACTED --dev-auth", "-secret=REDACTED", "--serve-args=--api-key=REDACTED"}
	if !slices.Equal(got, want) {
		t.Fatalf("Redact:\n got %q\nwant %q", got, want)
	}
}

func TestLocateLeaderShapes(t *testing.T) {
	c := &cluster{nodes: []*node{
		{base: "n1", name: "n1", listen: "127.0.0.1:1001", gossip: "127.0.0.1:2001"},
		{base: "n2", name: "n2-w1", listen: "127.0.0.1:1002", gossip: "127.0.0.1:2002"},
	}}
	for raw, want := range map[string]string{
		`"n2-w1"`:                        "n2",
		`"127.0.0.1:1001"`:               "n1",
		`{"name":"n1","state":"leader"}`: "n1",
		`{"node":"n2-w1"}`:               "n2",
		`{"http":"127.0.0.1:1002"}`:      "n2",
		`{"address":"127.0.0.1:2001"}`:   "n1",
		`"n9"`:                           "",
		`null`:                           "",
		`42`:                             "",
	} {
		got := c.nodeOf(json.RawMessage(raw))
		if (got == nil && want != "") || (got != nil && got.base != want) {
			t.Errorf("leader %s: got %v, want %q", raw, got, want)
		}
	}
}

func TestChildEnvDropsSwitchboardVariables(t *testing.T) {
	got := childEnv([]string{"PATH=/bin", "SWITCHBOARD_ROLES=gateway", "GOGC=200", "SWITCHBOARD_AUTH_SECRET=x"})
	if !slices.Equal(got, []string{"PATH=/bin", "GOGC=200"}) {
		t.Fatalf("childEnv = %v", got)
	}
}

// TestUnsettledShards: a shard holds the cluster's recovery up until it
// has a leader, the live voters wanted and no replica being added or
// removed; what is not a list (or object) of shards holds nothing up.
func TestUnsettledShards(t *testing.T) {
	three := `{"role":"voter","state":"replicate"},{"role":"voter","state":"replicate"},{"role":"voter","state":"probe"}`
	for raw, want := range map[string]string{
		``:                 "",
		`null`:             "",
		`{"a":1}`:          "",
		`"something else"`: "",
		`[{"id":1,"leader":"n1"},{"id":2,"leader":"n2"}]`:                                                          "",
		`[{"id":1,"leader":"n1"},{"id":2,"leader":null}]`:                                                          "no leader for shard 2",
		`[{"leader":"n1"},{"leader":""}]`:                                                                          "no leader for shard 1",
		`{"7":{"leader":{"name":"n1"}},"9":{"leader":0}}`:                                                          "no leader for shard 9",
		`[{"id":1,"leader":"n1","replicas":[` + three + `]}]`:                                                      "",
		`[{"id":1,"leader":"n1","replicas":[` + three + `]},{"id":2,"leader":"n2","replicas":[{"role":"voter"}]}]`: "shard 2 on 1 live voters",
		`[{"id":3,"leader":"n1","replicas":[` + three + `,{"role":"learner","state":"snapshot"}]}]`:                "shard 3 on 3 live voters",
		`[{"id":4,"leader":"n1","replicas":[{"role":"voter","state":"down"},{"role":"voter"},{"role":"voter"}]}]`:  "shard 4 on 2 live voters",
	} {
		got := shardsUnsettled(json.RawMessage(raw), 3)
		if (want == "") != (got == "") || !strings.HasPrefix(got, want) {
			t.Errorf("shards %s: got %q, want %q", raw, got, want)
		}
	}
	if got := shardsUnsettled(json.RawMessage(`[{"id":1,"leader":"n1","replicas":[{"role":"voter"}]}]`), 1); got != "" {
		t.Errorf("one voter wanted: %q", got)
	}
}

// TestTimelineLabels: a fault's label names its kind unless the next
// fault's bar in its row starts before the label would end; then it is
// the number only (the bar's title names it).
func TestTimelineLabels(t *testing.T) {
	rep := &Report{Nodes: []NodeReport{{Node: "n1"}, {Node: "n2"}}}
	for i, f := range []struct {
		node string
		at   float64
	}{{"n1", 10}, {"n1", 11}, {"n2", 11.5}, {"n1", 40}} {
		rep.Faults = append(rep.Faults, Fault{Planned: Planned{N: i + 1, Kind: FaultPartition}, Node: f.node, AtS: f.at, DownS: f.at, BackS: f.at + 1, RecoveredS: f.at + 1.5})
	}
	rep.Nodes = append(rep.Nodes, NodeReport{Node: "n3"})
	rep.Faults = append(rep.Faults, Fault{Planned: Planned{N: 5, Kind: FaultSplit}, Node: "n3", With: []string{"n2"}, AtS: 50, DownS: 50, BackS: 51, RecoveredS: 52})
	svg := string(timeline(rep, 60))
	for _, want := range []string{`fill="#222">1</text>`, `fill="#222">2 partition</text>`, `fill="#222">3 partition</text>`, `fill="#222">4 partition</text>`,
		`fill="#222">5 split</text>`, `<rect data-fault-with="5"`, `<title>5 split: with n3</title>`} {
		if !strings.Contains(svg, want) {
			t.Errorf("timeline lacks %s", want)
		}
	}
	// The legend names the kinds of the run (planned or injected), and
	// the plot is tall enough for all of them.
	for _, k := range []string{FaultPartition, FaultSplit, FaultKill} {
		if want := `fill="#222">` + k + `</text>`; strings.Contains(svg, want) != (k != FaultKill) {
			t.Errorf("legend of partition and split: %s %v", k, strings.Contains(svg, want))
		}
	}
	for _, k := range Kinds {
		rep.Plan = append(rep.Plan, Planned{Kind: k})
	}
	svg = string(timeline(rep, 60))
	var h float64
	if _, err := fmt.Sscanf(svg[strings.Index(svg, `height="`):], `height="%g"`, &h); err != nil {
		t.Fatal(err)
	}
	for _, k := range Kinds {
		i := strings.Index(svg, `fill="#222">`+k+`</text>`)
		if i < 0 {
			t.Fatalf("legend of every kind lacks %s", k)
		}
		var y float64
		j := strings.LastIndex(svg[:i], `y="`)
		if _, err := fmt.Sscanf(svg[j:], `y="%g"`, &y); err != nil || y > h {
			t.Fatalf("legend entry %s at y %g, below the plot's height %g (%v)", k, y, h, err)
		}
	}
}

// TestReplicasWanted: the harness reads --replicas from --serve-args.
func TestReplicasWanted(t *testing.T) {
	for args, want := range map[string]int{"": 3, "--replicas 5": 5, "--replicas=1 --x": 1, "--replicas 2 --replicas=4": 4, "--replicas x": 3} {
		c := &cluster{cfg: &Config{ServeArgs: strings.Fields(args)}}
		if got := c.replicas(); got != want {
			t.Errorf("--serve-args %q: replicas %d, want %d", args, got, want)
		}
	}
}

// TestTimeoutsLogged: the requests the nodes logged as timed out are
// summed over every node's log, and the earliest is named.
func TestTimeoutsLogged(t *testing.T) {
	dir := t.TempDir()
	logs := map[string]string{
		"n1": "time=2026-12-07T03:10:44.358Z level=INFO msg=\"member known\" component=cluster name=n1 state=alive\n" +
			"time=2026-12-07T03:10:48.000Z level=INFO msg=\"requests timed out\" component=cluster node=n3 requests=2\n",
		"n2": "=== chaos: pid 1\n" +
			"time=2026-12-07T03:10:47.974Z level=INFO msg=\"requests timed out\" component=cluster node=n1 requests=1\n",
		"n3": "nothing here\n",
	}
	var nodes []NodeReport
	for _, name := range []string{"n1", "n2", "n3", "n4"} { // n4 has no log
		path := filepath.Join(dir, name+".log")
		if l, ok := logs[name]; ok {
			if err := os.WriteFile(path, []byte(l), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, NodeReport{Node: name, Log: path})
	}
	n, first := timeoutsLogged(nodes)
	if n != 3 || first != "n2 to n1 at 2026-12-07T03:10:47.974Z" {
		t.Fatalf("timeoutsLogged = %d, %q", n, first)
	}
	if n, _ := timeoutsLogged(nodes[2:]); n != 0 {
		t.Fatalf("%d timeouts in logs without any", n)
	}
}
