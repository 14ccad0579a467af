package chaos

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard-chat/switchboard/loadtest"
)

// page is report.html: one file, inline CSS and SVG, no scripts, so it
// opens offline.
var page = template.Must(template.New("chaos").Funcs(template.FuncMap{"ms": loadtest.FormatMS, "sub": func(a, b float64) float64 { return a - b }}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Switchboard chaos run — seed {{.R.Config.Seed}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.ok{color:#17803d;font-weight:600}.bad{color:#b42318;font-weight:600}
svg.plot{display:block;margin:8px 0;background:#fff}
code{background:#f4f4f4;padding:1px 4px}
</style>
</head>
<body>
<h1>Switchboard chaos run</h1>
<p>{{.R.Config.Nodes}} nodes (<code>--failure-detection {{.R.Config.Detection}}</code>), faults <code>{{.Faults}}</code>, seed {{.R.Config.Seed}};
load: chat, {{.R.Config.Sessions}} sessions on {{.R.Config.Channels}} channels across every gateway, {{printf "%.0f" .R.Config.Rate}} messages/s
for {{.R.Config.DurationS}} s after a {{.R.Config.WarmupS}} s warmup.
{{.R.Started.Format "2006-01-02 15:04:05 UTC"}} to {{.R.Finished.Format "15:04:05 UTC"}}.</p>
{{if .R.Command}}<p>Command: <code>{{.R.Command}}</code></p>{{end}}

<h2>Verdict</h2>
<p class="{{if .R.OK}}ok{{else}}bad{{end}}" id="result">{{if .R.OK}}The run passed.{{else}}The run failed:{{end}}</p>
{{if .R.Problems}}<ul>{{range .R.Problems}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{range .R.Notes}}<p>Note: {{.}}</p>{{end}}
{{with .R.Check}}<p class="{{if .OK}}ok{{else}}bad{{end}}" id="check">{{.Summary}}{{if $.R.ReadFrom}} (history read from {{$.R.ReadFrom}}){{end}}</p>
{{if .Violations}}<table id="violations"><tr><th>kind</th><th>channel</th><th>segment</th><th>client_id</th><th>detail</th></tr>
{{range .Violations}}<tr><td>{{.Kind}}</td><td>{{.Channel}}</td><td>{{.Segment}}</td><td>{{.ClientID}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{end}}{{end}}
{{with .R.Load}}<p class="{{if .Oracle.OK}}ok{{else}}bad{{end}}" id="delivery">delivery {{.Oracle.Summary}}</p>
{{if .Oracle.Violations}}<table><tr><th>kind</th><th>channel</th><th>segment</th><th>seq</th><th>watcher</th><th>detail</th></tr>
{{range .Oracle.Violations}}<tr><td>{{.Kind}}</td><td>{{.Channel}}</td><td>{{.Segment}}</td><td>{{.Seq}}</td><td>{{.Watcher}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{end}}{{end}}

<h2>Faults</h2>
<table id="faults"><tr><th>#</th><th>kind</th><th>node</th><th>target</th><th>planned</th><th>at</th><th>down for</th><th>recovered after</th><th>unavailability p50 / p99 / max</th><th>worst channel</th><th>sends failed</th><th>error</th></tr>
{{range .FaultRows}}<tr><td>{{.N}}</td><td>{{.Kind}}</td><td>{{.Label}}</td><td>{{.Target}}</td><td>{{printf "%.1f" .PlannedS}} s</td><td>{{printf "%.1f" .AtS}} s</td>
<td>{{if .BackS}}{{printf "%.1f" (sub .BackS .DownS)}} s{{end}}</td><td>{{if .RecoveredS}}{{printf "%.1f" (sub .RecoveredS .AtS)}} s{{end}}</td>
<td>{{ms .Unavailability.P50MS}} / {{ms .Unavailability.P99MS}} / {{ms .Unavailability.MaxMS}}</td><td>{{.Unavailability.Worst}}</td>
<td>{{.Unavailability.Failed}} of {{.Unavailability.Sends}}</td><td>{{.Error}}</td></tr>
{{end}}</table>
<p>A fault hits the leader of a run channel's shard when the cluster answers <code>GET /v1/cluster/locate</code>, otherwise the node the plan picked (seeded node).
A fault's unavailability covers the sends intended from its injection until every node was ready and saw every other alive again:
a channel's is the longest any of them waited for its answer, and the figures are over the channels that had one.</p>
{{.Timeline}}
{{.Throughput}}
{{.Errors}}
{{.Latency}}

<h2>Sends and operations</h2>
<table id="sends"><tr><th>send result</th><th>count</th></tr>
{{range .Sends}}<tr><td>{{.Code}}</td><td>{{.N}}</td></tr>
{{end}}</table>
{{if .Ops}}<table id="ops"><tr><th>op</th><th>result</th><th>count</th></tr>
{{range .Ops}}<tr><td>{{.Op}}</td><td>{{.Code}}</td><td>{{.N}}</td></tr>
{{end}}</table>{{end}}

<h2>Nodes</h2>
<table id="nodes"><tr><th>node</th><th>names</th><th>listen</th><th>gossip</th><th>pids</th><th>log</th></tr>
{{range .R.Nodes}}<tr><td>{{.Node}}</td><td>{{range $i, $n := .Names}}{{if $i}} → {{end}}{{$n}}{{end}}</td><td>{{.Listen}}</td><td>{{.Gossip}}</td><td>{{range $i, $p := .PIDs}}{{if $i}}, {{end}}{{$p}}{{end}}</td><td><code>{{.Log}}</code></td></tr>
{{end}}</table>
<h2>Events</h2>
<pre id="events">{{range .R.Events}}{{.}}
{{end}}</pre>
</body>
</html>
`))

// faultRow is a fault as the faults table shows it.
type faultRow struct {
	Fault
	Label    string
	PlannedS float64
}

type codeRow struct {
	Code string
	N    int
}

type opRow struct {
	Op, Code string
	N        int64
}

var kindColors = map[string]string{
	FaultKill: "#d62728", FaultPause: "#9467bd", FaultWipe: "#8c564b", FaultRestart: "#1f77b4", FaultDrain: "#ff7f0e", FaultPartition: "#17becf", FaultSplit: "#bcbd22", FaultOneway: "#e377c2", FaultDiskStall: "#7f7f7f", FaultLag: "#2ca02c", FaultDiskSlow: "#c7c7c7",
}

// WriteHTML writes the report as a self-contained page.
func (rep *Report) WriteHTML(w io.Writer) error {
	var faults []faultRow
	for _, f := range rep.Faults {
		faults = append(faults, faultRow{Fault: f, Label: nodeLabel(f), PlannedS: f.At.Seconds()})
	}
	var sends []codeRow
	for _, k := range sortedKeys(rep.Sends) {
		sends = append(sends, codeRow{k, rep.Sends[k]})
	}
	var ops []opRow
	if rep.Load != nil {
		for _, op := range sortedKeys(rep.Load.Ops) {
			for _, code := range sortedKeys(rep.Load.Ops[op]) {
				ops = append(ops, opRow{op, code, rep.Load.Ops[op][code]})
			}
		}
	}
	n := len(rep.Series)
	t := make([]float64, n)
	for i, s := range rep.Series {
		t[i] = s.T
	}
	get := func(f func(Second) float64) []float64 {
		out := make([]float64, n)
		for i, s := range rep.Series {
			out[i] = f(s)
		}
		return out
	}
	nanIfNone := func(s Second, v float64) float64 {
		if s.Acked == 0 {
			return math.NaN()
		}
		return v
	}
	codes := map[string]bool{}
	for _, s := range rep.Series {
		for c := range s.Errors {
			codes[c] = true
		}
	}
	palette := []string{"#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}
	var errLines []loadtest.Line
	for i, c := range sortedKeys(codes) {
		errLines = append(errLines, loadtest.Line{Name: c, Color: palette[i%len(palette)], X: t,
			Y: get(func(s Second) float64 { return float64(s.Errors[c]) })})
	}
	if len(errLines) == 0 {
		errLines = []loadtest.Line{{Name: "none", Color: "#2ca02c", X: t, Y: make([]float64, n)}}
	}
	xlab := "seconds since the first send (by intended time)"
	data := map[string]any{
		"R": rep, "FaultRows": faults, "Faults": strings.Join(rep.Config.Faults, ","), "Sends": sends, "Ops": ops,
		"Timeline": timeline(rep, float64(max(n-1, 1))),
		"Throughput": loadtest.Chart("throughput", "sends per second", xlab, "per second", []loadtest.Line{
			{Name: "sent", Color: "#1f77b4", X: t, Y: get(func(s Second) float64 { return float64(s.Sent) })},
			{Name: "acknowledged", Color: "#2ca02c", X: t, Y: get(func(s Second) float64 { return float64(s.Acked) })},
			{Name: "failed", Color: "#d62728", X: t, Y: get(func(s Second) float64 { return float64(s.Sent - s.Acked) })},
		}),
		"Errors": loadtest.Chart("errors", "failed sends per second by code", xlab, "per second", errLines),
		"Latency": loadtest.Chart("latency", "send → ack latency per second (ms)", xlab, "ms", []loadtest.Line{
			{Name: "p50", Color: "#1f77b4", X: t, Y: get(func(s Second) float64 { return nanIfNone(s, s.AckP50) })},
			{Name: "p99", Color: "#ff7f0e", X: t, Y: get(func(s Second) float64 { return nanIfNone(s, s.AckP99) })},
			{Name: "max", Color: "#d62728", X: t, Y: get(func(s Second) float64 { return nanIfNone(s, s.AckMax) })},
		}),
	}
	return page.Execute(w, data)
}

// timeline draws one row per node with a bar per fault: solid while the
// node was down or stopped, light while the cluster settled after it. It
// shares the charts' geometry and x range (0 to xmax seconds), so it lines
// up with them.
func timeline(rep *Report, xmax float64) template.HTML {
	const (
		w, left, right, top, row = 920.0, 70.0, 160.0, 36.0, 26.0
	)
	for _, f := range rep.Faults {
		xmax = math.Max(xmax, math.Max(f.RecoveredS, f.BackS))
	}
	pw := w - left - right
	// The legend names the kinds the run planned or injected; the plot is
	// tall enough for it.
	var kinds []string
	for _, k := range slices.Concat(rep.Plan, plannedOf(rep.Faults)) {
		if !slices.Contains(kinds, k.Kind) {
			kinds = append(kinds, k.Kind)
		}
	}
	slices.Sort(kinds)
	h := math.Max(top+row*float64(max(len(rep.Nodes), 1))+40, top+float64(len(kinds))*18+12)
	sx := func(x float64) float64 { return left + math.Max(0, math.Min(x, xmax))/xmax*pw }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" data-plot="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="fault timeline" font-family="sans-serif" font-size="11">`, w, h, w, h)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%g" height="%g" fill="#fff"/>`, w, h)
	fmt.Fprintf(&b, `<text x="%g" y="18" font-size="13" font-weight="600" fill="#222">fault timeline</text>`, left)
	rowOf := map[string]int{}
	for i, n := range rep.Nodes {
		rowOf[n.Node] = i
		y := top + row*float64(i)
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#e6e6e6"/>`, left, left+pw, y+row/2, y+row/2)
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end" fill="#444">%s</text>`, left-6, y+row/2+4, template.HTMLEscapeString(n.Node))
	}
	// A label that would run into the next fault's bar in its row, or
	// past the plot, says only the fault's number (the bar's title names
	// it).
	room := make([]float64, len(rep.Faults)) // to the next bar in the row
	for i, f := range rep.Faults {
		room[i] = sx(math.Inf(1)) - sx(faultFrom(f))
		for _, g := range rep.Faults[i+1:] {
			if g.Node == f.Node {
				room[i] = sx(faultFrom(g)) - sx(faultFrom(f))
				break
			}
		}
	}
	for i, f := range rep.Faults {
		y := top + row*float64(rowOf[f.Node]) + 4
		color := kindColors[f.Kind]
		from := faultFrom(f)
		back := f.BackS
		if back == 0 {
			back = xmax
		}
		fmt.Fprintf(&b, `<rect data-fault="%d" x="%.1f" y="%g" width="%.1f" height="%g" fill="%s"><title>%d %s %s</title></rect>`,
			f.N, sx(from), y, math.Max(1, sx(back)-sx(from)), row-8, color, f.N, f.Kind, template.HTMLEscapeString(nodeLabel(f)))
		if f.RecoveredS > back {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%g" width="%.1f" height="%g" fill="%s" fill-opacity="0.3"/>`, sx(back), y, sx(f.RecoveredS)-sx(back), row-8, color)
		}
		for _, m := range f.With { // a split's other nodes on the target's side, paler
			fmt.Fprintf(&b, `<rect data-fault-with="%d" x="%.1f" y="%g" width="%.1f" height="%g" fill="%s" fill-opacity="0.5"><title>%d %s: with %s</title></rect>`,
				f.N, sx(from), top+row*float64(rowOf[m])+4, math.Max(1, sx(back)-sx(from)), row-8, color, f.N, f.Kind, template.HTMLEscapeString(f.Node))
		}
		label := fmt.Sprintf("%d %s", f.N, f.Kind)
		if 2+labelWidth(label) > room[i] {
			label = strconv.Itoa(f.N)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" fill="#222">%s</text>`, sx(from)+2, y-1, label)
	}
	base := top + row*float64(len(rep.Nodes))
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#999"/>`, left, left+pw, base, base)
	step := 1.0
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600} {
		if step = s; xmax/s <= 12 {
			break
		}
	}
	for x := 0.0; x <= xmax; x += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle" fill="#444">%g</text>`, sx(x), base+16, x)
	}
	for i, k := range kinds {
		ly := top + 12 + float64(i)*18
		fmt.Fprintf(&b, `<rect x="%g" y="%g" width="20" height="8" fill="%s"/><text x="%g" y="%g" fill="#222">%s</text>`,
			left+pw+12, ly-6, kindColors[k], left+pw+38, ly+2, k)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built from escaped parts above
}

// plannedOf returns the faults' plans.
func plannedOf(fs []Fault) []Planned {
	out := make([]Planned, len(fs))
	for i, f := range fs {
		out[i] = f.Planned
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// faultFrom is when a fault's bar starts: when its node went down or
// stopped, or when it was injected.
func faultFrom(f Fault) float64 {
	if f.DownS == 0 {
		return f.AtS
	}
	return f.DownS
}

// labelWidth estimates the width of text at the plots' 11 px sans-serif.
func labelWidth(text string) float64 { return 6.2 * float64(len(text)) }
