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
