package loadtest

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// An explicit 0 rate or share means none, not the default; negative,
// infinite and NaN values are refused.
func TestConfigZeroIsZero(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rate, cfg.HistoryShare = 0, 0
	cfg.withDefaults()
	if cfg.Rate != 0 || cfg.HistoryShare != 0 || cfg.ReactionShare != 0 {
		t.Fatalf("zero replaced: rate %v history share %v reaction share %v", cfg.Rate, cfg.HistoryShare, cfg.ReactionShare)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("zero rate refused: %v", err)
	}
	if _, ok := NewSchedule(1, 0, time.Minute, layoutFor(&cfg, "z"), Shares{}).Next(); ok {
		t.Fatal("a zero rate scheduled a step")
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.Rate = -1 },
		func(c *Config) { c.Rate = math.NaN() },
		func(c *Config) { c.Rate = math.Inf(1) },
		func(c *Config) { c.HistoryShare = -0.1 },
		func(c *Config) { c.HistoryShare = math.NaN() },
		func(c *Config) { c.Scenario, c.ReactionShare = ScenarioLiveroom, -0.1 },
		func(c *Config) { c.Scenario, c.ReactionShare = ScenarioLiveroom, 1 },
		func(c *Config) { c.ReactionShare = 0.1 }, // chat
		func(c *Config) { c.Interval = -time.Second },
		func(c *Config) { c.Drain = -time.Second },
		func(c *Config) { c.SendWorkers = -1 },
	} {
		c := DefaultConfig()
		bad(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("accepted rate %v history share %v reaction share %v in %s", c.Rate, c.HistoryShare, c.ReactionShare, c.Scenario)
		}
	}
}

// Reactions come from any member of the live channel, at about their
// share, and a zero share leaves the schedule as it was.
func TestScheduleReactions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Scenario, cfg.Sessions, cfg.Senders = ScenarioLiveroom, 50, 2
	l := layoutFor(&cfg, "x")
	all := func(sh Shares) []Step {
		s := NewSchedule(3, 1000, 2*time.Second, l, sh)
		var out []Step
		for st, ok := s.Next(); ok; st, ok = s.Next() {
			out = append(out, st)
		}
		return out
	}
	plain, zero := all(Shares{}), all(Shares{Reaction: 0})
	if len(plain) != len(zero) || plain[len(plain)-1] != zero[len(zero)-1] {
		t.Fatal("a zero reaction share changed the schedule")
	}
	steps := all(Shares{Reaction: 0.5})
	reactions, bySenders := 0, 0
	for _, st := range steps {
		if st.Kind != KindReaction {
			if !contains(l.Senders[0], st.Session) {
				t.Fatalf("send from %d, not a sender", st.Session)
			}
			continue
		}
		reactions++
		if contains(l.Senders[0], st.Session) {
			bySenders++
		}
	}
	if n := len(steps); reactions < n*4/10 || reactions > n*6/10 || bySenders == reactions {
		t.Fatalf("%d reactions of %d steps, %d by senders", reactions, n, bySenders)
	}
}

// The report fails whenever something was not accounted for or verified;
// rate limiting alone fails nothing.
func TestReportProblems(t *testing.T) {
	ok := sampleReport(true)
	ok.Totals = Totals{Scheduled: 10, Acked: 8, RateLimited: 2, Reactions: Tally{Scheduled: 3, OK: 1, RateLimited: 1, Skipped: 1}}
	if p := ok.problems(); len(p) != 0 {
		t.Fatalf("problems %q", p)
	}
	for name, c := range map[string]struct {
		mutate func(*Report)
		want   string
	}{
		"setup":      {func(r *Report) { r.Setup.Failed = 2 }, "2 sessions failed to set up"},
		"no session": {func(r *Report) { r.Totals.Failed = 3 }, "3 sends failed"},
		"unanswered": {func(r *Report) { r.Totals.Unanswered = 1 }, "1 sends unanswered"},
		"history":    {func(r *Report) { r.Totals.History.Failed = 1 }, "1 history reads failed"},
		"reactions":  {func(r *Report) { r.Totals.Reactions.Unanswered = 4 }, "4 reactions unanswered"},
		"unverified": {func(r *Report) {
			r.Oracle.OK, r.Oracle.Counts = false, map[string]int64{ViolationUnverified: 1}
		}, "the oracle found unverified 1"},
	} {
		r := *ok
		r.Oracle.Counts = map[string]int64{}
		c.mutate(&r)
		p := r.problems()
		if len(p) != 1 || !strings.HasPrefix(p[0], c.want) {
			t.Errorf("%s: problems %q, want %q", name, p, c.want)
		}
	}
}

// report.json's keys follow one naming: words joined by underscores.
func TestReportKeys(t *testing.T) {
	b, err := json.Marshal(sampleReport(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"deliveries_per_sec":500`, `"sent_per_sec":100`, `"ok":true`, `"rate_limited":0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("report.json lacks %s", want)
		}
	}
	if strings.Contains(string(b), "deliveriesper") {
		t.Error("report.json has the misspelled deliveriesper_sec")
	}
}
