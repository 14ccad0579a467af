package loadtest

import (
	"errors"
	"html/template"
	"time"
)

// SendOutcome is how one scheduled send ended, for Config.OnSend.
type SendOutcome struct {
	Channel  string
	User     string // the sender
	ClientID string // empty when the send was never issued (no session)
	// Intended is the send's time in the schedule, Issued when it was
	// first written (zero when never issued), Settled when its answer
	// (or its failure) arrived. All three carry the monotonic clock.
	Intended, Issued, Settled time.Time
	// Code is "ok" (acknowledged), a protocol error code, or what the
	// client saw (see Report.Ops).
	Code string
	// Segment and MessageID are the acknowledged message's (ok only).
	Segment   uint64
	MessageID string
}

func (r *runner) sendOutcome(o SendOutcome) {
	if r.cfg.OnSend != nil {
		r.cfg.OnSend(o)
	}
}

// LayoutOf returns the layout Run gives cfg: its channel and user ids.
// cfg.RunID must be set (Run makes a random one up otherwise).
func LayoutOf(cfg Config) (*Layout, error) {
	if cfg.RunID == "" {
		return nil, errors.New("loadtest: LayoutOf needs a run id")
	}
	cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return layoutFor(&cfg, cfg.RunID), nil
}

// Line is one series of a Chart.
type Line = line

// Chart draws lines as a self-contained SVG, like the plots of
// report.html; id names the plot (data-plot). A NaN y leaves a point out.
func Chart(id, title, xLabel, yLabel string, lines []Line) template.HTML {
	return chart(id, title, xLabel, yLabel, lines)
}
