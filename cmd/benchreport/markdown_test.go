package main

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/loadtest"
)

// TestResultColumnIsTheRunsResult: a run the oracle passed but that failed
// otherwise (sessions that never set up) is not counted as OK, and the
// runs' list says why it failed.
func TestResultColumnIsTheRunsResult(t *testing.T) {
	b := &bench{o: options{out: "docs/benchmarks.md", bin: "bin/switchboard", repeat: 2, only: "live"}}
	b.groups = b.plan()
	passed := &loadtest.Report{OK: true}
	passed.Oracle.OK = true
	failed := &loadtest.Report{OK: false, Problems: []string{"2 sessions failed to set up (connect to every target, channel.create or channel.join)"}}
	failed.Oracle.OK = true
	failed.Setup.Failed = 2
	s := b.groups[0].specs[0]
	s.reports = []*loadtest.Report{passed, failed}

	md := b.markdown(time.Minute)
	var row, run string
	for line := range strings.Lines(md) {
		switch {
		case strings.HasPrefix(line, "| rate |") && !strings.HasSuffix(line, "| errors | result |\n"):
			t.Errorf("header %q, want a result column", line)
		case strings.HasPrefix(line, "| "+s.label+" |"):
			row = line
		case strings.HasPrefix(line, "- "+s.label+" #2: "):
			run = line
		}
	}
	if !strings.HasSuffix(row, "| 1/2 OK |\n") {
		t.Errorf("row %q, want 1/2 OK", row)
	}
	if !strings.Contains(run, "result: FAILED: 2 sessions failed to set up") {
		t.Errorf("run #2 %q lacks its problems", run)
	}
}

// TestKeptNotes: a new report keeps the old one's hand-written notes,
// heading and all, and an old report without them adds nothing.
func TestKeptNotes(t *testing.T) {
	old := "# Benchmarks\n\n| a | b |\n\n" + notesHeading + "\n\n### A/B, 2026-12-05\n\nfigures\n\n"
	if got, want := keptNotes(old), "\n"+notesHeading+"\n\n### A/B, 2026-12-05\n\nfigures\n"; got != want {
		t.Errorf("kept %q, want %q", got, want)
	}
	if got := keptNotes("# Benchmarks\n\n## Go benchmarks\n"); got != "" {
		t.Errorf("kept %q from a report without notes", got)
	}
}

// TestReferenceRatios: with a reference build's runs, the live room's
// targets are ratios of the two builds' medians of the same report, and
// the group's table has a reference row.
func TestReferenceRatios(t *testing.T) {
	b := &bench{o: options{out: "docs/benchmarks.md", bin: "bin/switchboard", refBin: "bin/switchboard-ref-abc", refName: "abc", repeat: 1, only: "live"}}
	b.groups = b.plan()
	rep := func(p99, setup float64) *loadtest.Report {
		r := &loadtest.Report{OK: true, Latency: map[string]loadtest.Summary{"send_delivered": {P99: p99}}}
		r.Setup.Seconds = setup
		return r
	}
	for _, s := range b.groups[0].specs {
		s.runs = runs{reports: []*loadtest.Report{rep(100, 1.5)}, perCPU: []float64{300000}, nodeCores: []float64{0.5}, setupCPU: []float64{120e-6}}
		s.ref = &runs{reports: []*loadtest.Report{rep(400, 2)}, perCPU: []float64{150000}, nodeCores: []float64{0.6}, setupCPU: []float64{240e-6}}
	}
	md := b.markdown(time.Minute)
	for _, want := range []string{
		"| live room deliveries per node CPU-second, 5,000 viewers × 20 msg/s | ≥ 1.7 × the reference build's | 300000 against 150000: **2.00 ×** |",
		"| p99 send→delivered, 5,000 viewers × 20 msg/s | ≤ 0.5 × the reference build's | 100.0 ms against 400.0 ms: **0.25 ×** |",
		"| connect + join of 5,000 sessions (64 at a time) | ≤ 0.6 × the reference build's | 1.50 s against 2.00 s: **0.75 ×** (node CPU per session 120 µs against 240 µs) |",
		"| 20 msg/s, reference | ",
		"-ref-bin bin/switchboard-ref-abc -ref-name abc",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestIdleFiguresSayWhichHeap: the idle table gives the live heap (after a
// full GC) and the heap as found, each row as wide as its header, and the
// target is checked against the live heap.
func TestIdleFiguresSayWhichHeap(t *testing.T) {
	b := &bench{o: options{out: "docs/benchmarks.md", bin: "bin/switchboard", repeat: 1, only: "idle"}}
	b.groups = b.plan()
	b.idle = []idleResult{{sessions: 10000, heapPer: 15000, liveHeapPer: 9000, stackPer: 4096, rssPer: 20000, goroutinesPer: 1}}
	md := b.markdown(time.Minute)
	var header, row, target string
	for line := range strings.Lines(md) {
		switch {
		case strings.HasPrefix(line, "| run | users |"):
			header = line
		case strings.HasPrefix(line, "| 1 | one each |"):
			row = line
		case strings.HasPrefix(line, "| node heap (live, after a full GC) + stacks"):
			target = line
		}
	}
	if !strings.Contains(header, "| node live heap/session | node heap as found/session |") {
		t.Fatalf("header %q", header)
	}
	if strings.Count(row, "|") != strings.Count(header, "|") {
		t.Fatalf("row %q does not fit header %q", row, header)
	}
	if !strings.Contains(row, "| "+kb(9000)+" | "+kb(15000)+" | "+kb(4096)+" |") {
		t.Fatalf("row %q", row)
	}
	if !strings.HasSuffix(target, "| ≤ 16 KB | "+kb(9000+4096)+" |\n") {
		t.Fatalf("target row %q, want the live heap plus stacks", target)
	}
}

// TestStormRows: the connect storm's section has a row per run and a
// median row per build, in microseconds per session.
func TestStormRows(t *testing.T) {
	b := &bench{o: options{out: "docs/benchmarks.md", bin: "bin/switchboard", refBin: "bin/switchboard-ref-abc", refName: "abc", repeat: 1, only: "storm"}}
	b.groups = b.plan()
	b.storm0 = []stormRun{{sessions: 5000, connectS: 0.8, nodeConnect: 150e-6, genConnect: 80e-6, joinS: 0.2, nodeJoin: 40e-6, genJoin: 20e-6}}
	b.stormRef = []stormRun{{sessions: 5000, connectS: 1, nodeConnect: 210e-6, genConnect: 80e-6, joinS: 0.2, nodeJoin: 38e-6, genJoin: 21e-6, failed: 2}}
	md := b.markdown(time.Minute)
	for _, want := range []string{
		"## Connect storm: 5000 new users connect, then join a live room",
		"| this build | 1 | 0.80 s | 150 µs | 80 µs | 0.20 s | 40 µs | 20 µs | 0 |",
		"| **reference abc** | **median** | **1.00 s** | **210 µs** | **80 µs** | **0.20 s** | **38 µs** | **21 µs** | |",
		"| reference abc | 1 | 1.00 s | 210 µs | 80 µs | 0.20 s | 38 µs | 21 µs | 2 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
