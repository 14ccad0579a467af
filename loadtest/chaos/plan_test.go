package chaos

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func planConfig(seed uint64) PlanConfig {
	return PlanConfig{Seed: seed, Kinds: Kinds, Nodes: 3, Channels: 20, Start: 5 * time.Second, End: 125 * time.Second,
		Interval: 10 * time.Second, Settle: 5 * time.Second, Down: 2 * time.Second, Pause: 3 * time.Second}
}

func TestPlanIsSeeded(t *testing.T) {
	a, b := Plan(planConfig(7)), Plan(planConfig(7))
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different plans:\n%v\n%v", a, b)
	}
	if c := Plan(planConfig(8)); reflect.DeepEqual(a, c) {
		t.Fatalf("seeds 7 and 8 gave the same plan %v", a)
	}
	if len(a) < len(Kinds) {
		t.Fatalf("120 s at one fault per 10 s planned %d faults: %v", len(a), a)
	}
	// The first round holds every kind once.
	var first []string
	for _, f := range a[:len(Kinds)] {
		first = append(first, f.Kind)
	}
	slices.Sort(first)
	want := slices.Sorted(slices.Values(Kinds))
	if !slices.Equal(first, want) {
		t.Fatalf("first %d faults %v, want each of %v once", len(Kinds), first, want)
	}
	cfg := planConfig(7)
	var prev time.Duration
	for i, f := range a {
		if f.N != i+1 || f.At <= prev || f.At < cfg.Start || f.At+f.Hold > cfg.End-cfg.Settle {
			t.Fatalf("fault %d out of bounds or order: %+v", i, f)
		}
		prev = f.At
		if f.Slot < 0 || f.Slot >= cfg.Nodes || f.Channel < 0 || f.Channel >= cfg.Channels {
			t.Fatalf("fault %d target out of range: %+v", i, f)
		}
		if (f.Draw != 0) != (f.Kind == FaultSplit || f.Kind == FaultOneway || f.Kind == FaultLag || f.Kind == FaultDiskSlow) {
			t.Fatalf("fault %d's draw: %+v", i, f)
		}
		switch f.Kind {
		case FaultPause:
			if f.Hold < cfg.Pause {
				t.Fatalf("pause shorter than %s: %+v", cfg.Pause, f)
			}
		case FaultDiskSlow:
			if f.Hold < diskSlowHoldMin {
				t.Fatalf("a slow disk shorter than %s: %+v", diskSlowHoldMin, f)
			}
		case FaultRestart:
			if f.Hold != 0 {
				t.Fatalf("restart with a hold: %+v", f)
			}
		default:
			if f.Hold <= 0 {
				t.Fatalf("%s without a hold: %+v", f.Kind, f)
			}
		}
	}
}

// TestLagDraw: a lag's delay is 20 to 300 ms, whole milliseconds, with a
// fifth of it as jitter, the same for the same draw, and spread over the
// range across draws.
func TestLagDraw(t *testing.T) {
	seen := map[time.Duration]bool{}
	for seed := range uint64(200) {
		l := lagOf(seed)
		if l != lagOf(seed) {
			t.Fatalf("draw %d: two lags", seed)
		}
		if l.Delay < 20*time.Millisecond || l.Delay > 300*time.Millisecond || l.Delay%time.Millisecond != 0 || l.Jitter != l.Delay/5 || l.Loss != 0.05 {
			t.Fatalf("draw %d: %+v", seed, l)
		}
		seen[l.Delay/(50*time.Millisecond)] = true
	}
	if len(seen) < 6 { // 20–49, 50–99, …, 250–299 (and 300) ms
		t.Fatalf("200 draws fell in %d of the 50 ms bands", len(seen))
	}
}

// TestSyncDelayDraw: a slow disk adds 150 to 400 ms to each sync, the
// same for the same draw.
func TestSyncDelayDraw(t *testing.T) {
	lo, hi := time.Hour, time.Duration(0)
	for seed := range uint64(200) {
		d := syncDelayOf(seed)
		if d != syncDelayOf(seed) || d < 150*time.Millisecond || d > 400*time.Millisecond || d%time.Millisecond != 0 {
			t.Fatalf("draw %d: %s", seed, d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < 200*time.Millisecond {
		t.Fatalf("200 draws spanned %s to %s only", lo, hi)
	}
}

func TestPlanRespectsKindsAndRoom(t *testing.T) {
	cfg := planConfig(3)
	cfg.Kinds = []string{FaultRestart, FaultKill}
	for _, f := range Plan(cfg) {
		if f.Kind != FaultRestart && f.Kind != FaultKill {
			t.Fatalf("planned %s, not asked for", f.Kind)
		}
	}
	cfg.End = cfg.Start + 2*time.Second // no room for any
	if p := Plan(cfg); len(p) != 0 {
		t.Fatalf("planned %v in 2 s", p)
	}
}

func TestParseKinds(t *testing.T) {
	k, err := ParseKinds("kill, pause,kill,,drain")
	if err != nil || !slices.Equal(k, []string{"kill", "pause", "drain"}) {
		t.Fatalf("ParseKinds = %v, %v", k, err)
	}
	if _, err := ParseKinds("kill,explode"); err == nil {
		t.Fatal("unknown kind accepted")
	}
}

func TestSplitSides(t *testing.T) {
	for size, want := range map[int]int{1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 2, 7: 2} {
		var running []*node
		for i := range size {
			running = append(running, &node{base: fmt.Sprintf("n%d", i+1)})
		}
		target := running[size-1]
		seen := map[string]bool{}
		for seed := range uint64(40) {
			mates := splitSides(target, running, seed)
			if len(mates) != want {
				t.Fatalf("%d nodes: %d mates %v, want %d", size, len(mates), mates, want)
			}
			if slices.Contains(mates, target) {
				t.Fatalf("%d nodes: the target is its own mate", size)
			}
			if again := splitSides(target, running, seed); !slices.Equal(mates, again) {
				t.Fatalf("%d nodes, seed %d: %v then %v", size, seed, mates, again)
			}
			for _, m := range mates {
				seen[m.base] = true
			}
		}
		if want > 0 && len(seen) != size-1 {
			t.Fatalf("%d nodes: 40 seeds chose mates only among %v", size, seen)
		}
	}
}

// TestCutPlan: a partition tells both sides to cut the other; a one-way
// cut tells only one side; a side that is every node has nothing to cut.
func TestCutPlan(t *testing.T) {
	var run []*node
	for i := range 4 {
		run = append(run, &node{base: fmt.Sprintf("n%d", i+1), name: fmt.Sprintf("n%d", i+1)})
	}
	show := func(plan map[*node][]string) string {
		var out []string
		for _, n := range run {
			if names, ok := plan[n]; ok {
				out = append(out, n.base+":"+strings.Join(names, ","))
			}
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		side       []*node
		this, that bool
		want       string
	}{
		{run[:1], true, true, "n1:n2,n3,n4 n2:n1 n3:n1 n4:n1"},
		{run[1:3], true, true, "n1:n2,n3 n2:n1,n4 n3:n1,n4 n4:n2,n3"},
		{run[:1], true, false, "n1:n2,n3,n4"},
		{run[:1], false, true, "n2:n1 n3:n1 n4:n1"},
	} {
		if got := show(cutPlan(run, tc.side, tc.this, tc.that)); got != tc.want {
			t.Errorf("side %v, this %v, that %v: %s, want %s", tc.side[0].base, tc.this, tc.that, got, tc.want)
		}
	}
	if plan := cutPlan(run, run, true, true); plan != nil {
		t.Errorf("every node on one side: %v", plan)
	}
}
