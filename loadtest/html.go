package loadtest

import (
	"html/template"
	"io"
	"math"
)

// htmlPage is report.html: one file, inline CSS and SVG, no scripts or
// external assets, so it opens offline.
var htmlPage = template.Must(template.New("report").Funcs(template.FuncMap{"ms": FormatMS}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Switchboard load test — {{.R.Scenario}} {{.R.RunID}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
.ok{color:#17803d;font-weight:600}.bad{color:#b42318;font-weight:600}
svg.plot{display:block;margin:8px 0;background:#fff}
svg .grid{stroke:#e6e6e6}svg .frame{fill:none;stroke:#999}svg .tick{stroke:#999}
svg text{font:11px system-ui,sans-serif;fill:#444}svg .yl{text-anchor:end}svg .xl{text-anchor:middle}svg .t{font-size:13px;font-weight:600}
code{background:#f4f4f4;padding:1px 4px}
</style>
</head>
<body>
<h1>Switchboard load test: {{.R.Scenario}}</h1>
<p>Run <code>{{.R.RunID}}</code>, {{.R.Started.Format "2006-01-02 15:04:05 UTC"}} to {{.R.Finished.Format "15:04:05 UTC"}}.
{{.R.Setup.Sessions}} sessions ({{.R.Setup.Connected}} connected in {{printf "%.1f" .R.Setup.Seconds}} s), {{.R.Config.Channels}} channels,
{{printf "%.0f" .R.Config.Rate}} messages/s offered (open loop, seed {{.R.Config.Seed}}) for {{.R.Config.DurationS}} s after a {{.R.Config.WarmupS}} s warmup,
against {{range $i, $t := .R.Config.Targets}}{{if $i}}, {{end}}<code>{{$t}}</code>{{end}}.</p>
{{if .R.Command}}<p>Command: <code>{{.R.Command}}</code></p>{{end}}

<h2>Verdict</h2>
<p class="{{if .R.OK}}ok{{else}}bad{{end}}" id="result">{{if .R.OK}}The run passed.{{else}}The run failed:{{end}}</p>
{{if .R.Problems}}<ul>{{range .R.Problems}}<li>{{.}}</li>{{end}}</ul>{{end}}
<p class="{{if .R.Oracle.OK}}ok{{else}}bad{{end}}" id="verdict">{{.R.Oracle.Summary}}</p>
{{if .R.Oracle.Violations}}<table><tr><th>kind</th><th>channel</th><th>segment</th><th>seq</th><th>watcher</th><th>detail</th></tr>
{{range .R.Oracle.Violations}}<tr><td>{{.Kind}}</td><td>{{.Channel}}</td><td>{{.Segment}}</td><td>{{.Seq}}</td><td>{{.Watcher}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{end}}

<h2>Summary</h2>
<table>
<tr><th>sends scheduled</th><th>acknowledged</th><th>rate limited</th><th>failed</th><th>unanswered</th><th>resent</th><th>deliveries</th><th>acks/s (measured)</th><th>deliveries/s (measured)</th></tr>
<tr><td>{{.R.Totals.Scheduled}}</td><td>{{.R.Totals.Acked}}</td><td>{{.R.Totals.RateLimited}}</td><td>{{.R.Totals.Failed}}</td><td>{{.R.Totals.Unanswered}}</td><td>{{.R.Totals.Resent}}</td><td>{{.R.Totals.Deliveries}}</td><td>{{printf "%.0f" .R.Totals.AcksPerSec}}</td><td>{{printf "%.0f" .R.Totals.DeliveriesPerSec}}</td></tr>
</table>
{{if .Tallies}}<table id="tallies"><tr><th>operation</th><th>scheduled</th><th>ok</th><th>rate limited</th><th>failed</th><th>skipped</th><th>unanswered</th></tr>
{{range .Tallies}}<tr><td>{{.Name}}</td><td>{{.T.Scheduled}}</td><td>{{.T.OK}}</td><td>{{.T.RateLimited}}</td><td>{{.T.Failed}}</td><td>{{.T.Skipped}}</td><td>{{.T.Unanswered}}</td></tr>
{{end}}</table>{{end}}
<table id="latency">
<tr><th>latency</th><th>count</th><th>min</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>
{{range .Latency}}<tr><td>{{.Name}}</td><td>{{.S.Count}}</td><td>{{ms .S.Min}}</td><td>{{ms .S.P50}}</td><td>{{ms .S.P90}}</td><td>{{ms .S.P99}}</td><td>{{ms .S.P999}}</td><td>{{ms .S.Max}}</td></tr>
{{end}}</table>
<table id="ops"><tr><th>op</th><th>result</th><th>count</th></tr>
{{range .Ops}}<tr><td>{{.Op}}</td><td>{{.Code}}</td><td>{{.N}}</td></tr>
{{end}}</table>

<h2>Over time</h2>
{{.Latency1}}
{{.Latency2}}
{{.Throughput}}
{{if .Memory}}{{.Memory}}{{end}}
<p>Latencies are measured from each send's intended time in the schedule, so time the generator or the server spent behind shows as latency.
Each point covers one interval; gaps mean nothing was measured then.</p>
</body>
</html>
`))

type latencyRow struct {
	Name string
	S    Summary
}

type tallyRow struct {
	Name string
	T    Tally
}

type opRow struct {
	Op, Code string
	N        int64
}

// WriteHTML writes the report as a self-contained page with its plots.
func (rep *Report) WriteHTML(w io.Writer) error {
	var rows []latencyRow
	for m := range numMetrics {
		rows = append(rows, latencyRow{m.String(), rep.Latency[m.String()]})
	}
	var ops []opRow
	for _, op := range sortedKeys(rep.Ops) {
		for _, code := range sortedKeys(rep.Ops[op]) {
			ops = append(ops, opRow{op, code, rep.Ops[op][code]})
		}
	}
	var tallies []tallyRow
	for _, row := range rep.tallies() {
		if row.T != (Tally{}) {
			tallies = append(tallies, row)
		}
	}
	n := len(rep.Series)
	t := make([]float64, n)
	get := func(f func(Point) float64) []float64 {
		out := make([]float64, n)
		for i, p := range rep.Series {
			out[i] = f(p)
		}
		return out
	}
	for i, p := range rep.Series {
		t[i] = p.T
	}
	orNaN := func(s Summary, v float64) float64 {
		if s.Count == 0 {
			return math.NaN()
		}
		return v
	}
	data := map[string]any{
		"R": rep, "Latency": rows, "Ops": ops, "Tallies": tallies,
		"Latency1": chart("latency-ack", "send → ack latency per interval (ms)", "seconds since the first send", "ms", []line{
			{"p50", "#1f77b4", t, get(func(p Point) float64 { return orNaN(p.Ack, p.Ack.P50) })},
			{"p99", "#ff7f0e", t, get(func(p Point) float64 { return orNaN(p.Ack, p.Ack.P99) })},
			{"p99.9", "#d62728", t, get(func(p Point) float64 { return orNaN(p.Ack, p.Ack.P999) })},
		}),
		"Latency2": chart("latency-delivered", "send → delivered latency per interval (ms)", "seconds since the first send", "ms", []line{
			{"p50", "#1f77b4", t, get(func(p Point) float64 { return orNaN(p.Delivered, p.Delivered.P50) })},
			{"p99", "#ff7f0e", t, get(func(p Point) float64 { return orNaN(p.Delivered, p.Delivered.P99) })},
			{"p99.9", "#d62728", t, get(func(p Point) float64 { return orNaN(p.Delivered, p.Delivered.P999) })},
		}),
		"Throughput": chart("throughput", "throughput per second", "seconds since the first send", "per second", []line{
			{"sent/s", "#1f77b4", t, get(func(p Point) float64 { return p.SentPerSec })},
			{"acked/s", "#2ca02c", t, get(func(p Point) float64 { return p.AckedPerSec })},
			{"delivered/s", "#9467bd", t, get(func(p Point) float64 { return p.DelivPerSec })},
			{"errors/s", "#d62728", t, get(func(p Point) float64 { return p.ErrorsPerSec })},
		}),
	}
	if len(rep.Memory) > 0 {
		mt := make([]float64, len(rep.Memory))
		heap := make([]float64, len(rep.Memory))
		rss := make([]float64, len(rep.Memory))
		for i, m := range rep.Memory {
			mt[i] = m.T
			heap[i] = float64(m.GenHeapBytes) / (1 << 20)
			rss[i] = math.NaN()
			if len(m.Nodes) > 0 {
				rss[i] = 0
				for _, nd := range m.Nodes {
					rss[i] += nd.RSSBytes / (1 << 20)
				}
			}
		}
		data["Memory"] = chart("memory", "memory (MiB)", "seconds since the first send", "MiB", []line{
			{"generator heap", "#1f77b4", mt, heap},
			{"nodes' RSS", "#ff7f0e", mt, rss},
		})
	}
	return htmlPage.Execute(w, data)
}
