package loadtest

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// line is one series of a chart.
type line struct {
	Name  string
	Color string
	X, Y  []float64
}

// chart draws lines as a self-contained SVG: axes with round ticks, one
// polyline per series and a legend. id names the plot (data-plot) so
// tests and scripts can find it.
func chart(id, title, xLabel, yLabel string, lines []line) template.HTML {
	const (
		w, h                     = 920.0, 320.0
		left, right, top, bottom = 70.0, 160.0, 36.0, 45.0
	)
	pw, ph := w-left-right, h-top-bottom
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, l := range lines {
		for i := range l.X {
			xmin, xmax = math.Min(xmin, l.X[i]), math.Max(xmax, l.X[i])
			if !math.IsNaN(l.Y[i]) {
				ymax = math.Max(ymax, l.Y[i])
			}
		}
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax = 0, 1
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	yticks := niceTicks(0, ymax*1.05) // headroom: a peak never sits on the frame
	ytop := yticks[len(yticks)-1]
	xticks := niceTicks(xmin, xmax)
	sx := func(x float64) float64 { return left + (x-xmin)/(xmax-xmin)*pw }
	sy := func(y float64) float64 { return top + ph - y/ytop*ph }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" data-plot="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="%s" font-family="sans-serif" font-size="11">`,
		template.HTMLEscapeString(id), w, h, w, h, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title>`, template.HTMLEscapeString(title))
	// Presentation attributes, not only CSS classes, so a plot renders
	// the same when it is copied out of the page.
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%g" height="%g" fill="#fff"/>`, w, h)
	fmt.Fprintf(&b, `<text x="%g" y="18" class="t" font-size="13" font-weight="600" fill="#222">%s</text>`, left, template.HTMLEscapeString(title))
	for _, y := range yticks {
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" class="grid" stroke="#e6e6e6"/>`, left, left+pw, sy(y), sy(y))
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" class="yl" text-anchor="end" fill="#444">%s</text>`, left-6, sy(y)+4, fmtTick(y))
	}
	for _, x := range xticks {
		if x < xmin || x > xmax {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" class="tick" stroke="#999"/>`, sx(x), sx(x), top+ph, top+ph+5)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" class="xl" text-anchor="middle" fill="#444">%s</text>`, sx(x), top+ph+18, fmtTick(x))
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" class="frame" fill="none" stroke="#999"/>`, left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%g" y="%g" class="xl" text-anchor="middle" fill="#444">%s</text>`, left+pw/2, h-6, template.HTMLEscapeString(xLabel))
	fmt.Fprintf(&b, `<text transform="translate(16,%g) rotate(-90)" class="xl" text-anchor="middle" fill="#444">%s</text>`, top+ph/2, template.HTMLEscapeString(yLabel))
	for i, l := range lines {
		var pts []string
		for k := range l.X {
			if math.IsNaN(l.Y[k]) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(l.X[k]), sy(l.Y[k])))
		}
		fmt.Fprintf(&b, `<polyline data-series="%s" points="%s" fill="none" stroke="%s" stroke-width="1.6"/>`,
			template.HTMLEscapeString(l.Name), strings.Join(pts, " "), l.Color)
		ly := top + 12 + float64(i)*18
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="%s" stroke-width="3"/>`, left+pw+12, left+pw+32, ly, ly, l.Color)
		fmt.Fprintf(&b, `<text x="%g" y="%g" class="lg" fill="#222">%s</text>`, left+pw+38, ly+4, template.HTMLEscapeString(l.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built from escaped parts above
}

// niceTicks returns round tick values from lo to at least hi.
func niceTicks(lo, hi float64) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Floor(lo/step) * step; ; v += step {
		out = append(out, v)
		if v >= hi {
			break
		}
	}
	return out
}

func fmtTick(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%gM", math.Round(v/1e5)/10)
	case a >= 1e4:
		return fmt.Sprintf("%gk", math.Round(v/100)/10)
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
