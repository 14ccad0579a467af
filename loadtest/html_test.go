package loadtest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

func sampleReport(ok bool) *Report {
	rep := &Report{RunID: "t1", Scenario: ScenarioChat, Started: time.Unix(0, 0).UTC(), Finished: time.Unix(30, 0).UTC()}
	rep.Config = ReportConfig{Targets: []string{"ws://127.0.0.1:1/v1/ws"}, Sessions: 10, Channels: 2, Rate: 100, DurationS: 3, Seed: 1}
	rep.Latency = map[string]Summary{"send_ack": {Count: 300, P50: 1, P99: 4, Max: 9}}
	rep.Ops = map[string]map[string]int64{"message.send": {"ok": 299, "unavailable": 1}}
	for i := range 30 {
		rep.Series = append(rep.Series, Point{T: float64(i + 1), SentPerSec: 100, AckedPerSec: 99, DelivPerSec: 500,
			Ack: Summary{Count: 100, P50: 1, P99: 3 + float64(i%4), P999: 8}, Delivered: Summary{Count: 500, P50: 1.2, P99: 4, P999: 9}})
	}
	rep.Memory = []MemorySample{{T: 5, GenHeapBytes: 10 << 20}, {T: 10, GenHeapBytes: 11 << 20, Nodes: []NodeMemory{{RSSBytes: 50 << 20}}}}
	rep.Oracle = Verdict{OK: ok, Counts: map[string]int64{}}
	rep.OK = ok
	if !ok {
		rep.Oracle.Counts[ViolationGap] = 1
		rep.Oracle.Violations = []Violation{{Kind: ViolationGap, Channel: "room<1>", Segment: 7, Seq: 9, Watcher: "u1", Detail: "never received"}}
		rep.Problems = []string{"the oracle found gap 1"}
	}
	return rep
}

// TestHTMLReportHasPlots renders a report, parses the page and checks its
// plots, verdict and that it needs nothing from outside.
func TestHTMLReportHasPlots(t *testing.T) {
	for _, ok := range []bool{true, false} {
		var buf bytes.Buffer
		if err := sampleReport(ok).WriteHTML(&buf); err != nil {
			t.Fatal(err)
		}
		doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		plots := map[string]int{} // data-plot → polylines with points
		var verdict, result string
		var walk func(n *html.Node, plot string)
		walk = func(n *html.Node, plot string) {
			if n.Type == html.ElementNode {
				for _, a := range n.Attr {
					switch {
					case a.Key == "data-plot":
						plot = a.Val
						plots[plot] += 0
					case a.Key == "src" || (a.Key == "href" && !strings.HasPrefix(a.Val, "#")):
						t.Errorf("external reference %s=%q", a.Key, a.Val)
					case a.Key == "id" && a.Val == "verdict":
						verdict = text(n)
					case a.Key == "id" && a.Val == "result":
						result = text(n)
					case a.Key == "points" && plot != "" && len(strings.Fields(a.Val)) >= 2:
						plots[plot]++
					}
				}
				if n.Data == "script" || n.Data == "link" {
					t.Errorf("page has a <%s>", n.Data)
				}
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c, plot)
			}
		}
		walk(doc, "")
		want := map[string]int{"latency-ack": 3, "latency-delivered": 3, "throughput": 4, "memory": 1}
		for id, n := range want {
			if plots[id] < n {
				t.Errorf("plot %s has %d drawn series, want %d (plots %v)", id, plots[id], n, plots)
			}
		}
		if ok && (!strings.Contains(verdict, "oracle: OK") || !strings.Contains(result, "passed")) {
			t.Errorf("verdict %q, result %q", verdict, result)
		}
		if !ok && (!strings.Contains(result, "failed") || !strings.Contains(buf.String(), "<li>the oracle found gap 1</li>")) {
			t.Errorf("result %q, or the problems are missing", result)
		}
		if !ok && (!strings.Contains(verdict, "FAILED") || !strings.Contains(buf.String(), "room&lt;1&gt;")) {
			t.Errorf("failed verdict %q, or the violation's channel is missing or unescaped", verdict)
		}
	}
}

func text(n *html.Node) string {
	var b strings.Builder
	var f func(*html.Node)
	f = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			f(c)
		}
	}
	f(n)
	return b.String()
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct{ lo, hi float64 }{{0, 1}, {0, 7.3}, {0, 98000}, {3, 47}, {0, 0}} {
		ts := niceTicks(c.lo, c.hi)
		if len(ts) < 2 || len(ts) > 12 || ts[0] > c.lo || ts[len(ts)-1] < c.hi {
			t.Errorf("niceTicks(%g, %g) = %v", c.lo, c.hi, ts)
		}
	}
}
