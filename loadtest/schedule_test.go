package loadtest

import (
	"testing"
	"time"
)

func collect(seed uint64, l *Layout) []Step {
	s := NewSchedule(seed, 500, 4*time.Second, l, Shares{History: 0.1})
	var out []Step
	for {
		st, ok := s.Next()
		if !ok {
			return out
		}
		out = append(out, st)
	}
}

func TestScheduleIsDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Sessions, cfg.Channels = 50, 5
	l := layoutFor(&cfg, "x")
	a, b, c := collect(7, l), collect(7, l), collect(8, l)
	if len(a) != len(b) {
		t.Fatalf("same seed: %d and %d steps", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed differs at %d: %+v vs %+v", i, a[i], b[i])
		}
	}
	same := len(a) == len(c)
	for i := 0; same && i < len(a); i++ {
		same = a[i] == c[i]
	}
	if same {
		t.Fatal("different seeds gave the same schedule")
	}
	// 500/s for 4 s: a Poisson count within 5 sigma of 2000.
	if len(a) < 1780 || len(a) > 2220 {
		t.Fatalf("%d steps, want about 2000", len(a))
	}
	last := time.Duration(0)
	for i, st := range a {
		if st.Index != uint64(i) || st.At < last || st.At >= 4*time.Second {
			t.Fatalf("step %d: %+v", i, st)
		}
		last = st.At
		if !contains(l.Senders[st.Channel], st.Session) {
			t.Fatalf("step %d: session %d does not send to channel %d", i, st.Session, st.Channel)
		}
	}
}

func TestLayouts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Scenario, cfg.Sessions, cfg.Senders = ScenarioLiveroom, 20, 3
	l := layoutFor(&cfg, "r")
	if len(l.ChannelIDs) != 1 || len(l.Members[0]) != 20 || len(l.Senders[0]) != 3 || l.ChannelTypes[0] != "live" {
		t.Fatalf("liveroom layout %+v", l)
	}
	cfg.Scenario, cfg.Channels = ScenarioChat, 6
	l = layoutFor(&cfg, "r")
	for c, ms := range l.Members {
		if l.Creator[c] != ms[0] {
			t.Fatalf("channel %d created by %d, first member %d", c, l.Creator[c], ms[0])
		}
	}
	if len(l.Members[0]) != 4 || len(l.Members[5]) != 3 {
		t.Fatalf("members %v", l.Members)
	}
	if err := (&Config{Scenario: "nope", Sessions: 1, Channels: 2, Senders: 1, MessageBytes: 1}).validate(); err == nil {
		t.Fatal("bad config accepted")
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
