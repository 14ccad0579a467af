package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/loadtest"
)

// shortRun is a small, bounded run against an in-process node.
func shortRun(t *testing.T, n *Node, scenario string, mutate func(*loadtest.Config)) *loadtest.Report {
	t.Helper()
	cfg := loadtest.DefaultConfig()
	cfg.Targets = []string{"ws://" + n.Addr() + "/v1/ws"}
	cfg.Scenario = scenario
	cfg.Sessions, cfg.Channels, cfg.Senders = 40, 8, 4
	cfg.Rate = 150
	cfg.Warmup, cfg.Duration = 300*time.Millisecond, 1500*time.Millisecond
	cfg.Ramp = 0
	cfg.Drain = 10 * time.Second
	cfg.Interval = 250 * time.Millisecond
	cfg.Logger = testLogger()
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if !rep.Oracle.OK {
		var b bytes.Buffer
		rep.WriteSummary(&b)
		t.Fatalf("oracle failed:\n%s", b.String())
	}
	if rep.Setup.Connected != cfg.Sessions {
		t.Fatalf("%d of %d sessions connected", rep.Setup.Connected, cfg.Sessions)
	}
	if rep.Totals.Acked == 0 || rep.Totals.Acked != rep.Oracle.Acked || rep.Latency["send_ack"].Count == 0 || rep.Latency["send_delivered"].Count == 0 {
		t.Fatalf("nothing measured: %+v %+v", rep.Totals, rep.Latency)
	}
	if rep.Oracle.HistoryMessages < rep.Oracle.Acked {
		t.Fatalf("history re-read %d messages for %d acknowledged", rep.Oracle.HistoryMessages, rep.Oracle.Acked)
	}
	return rep
}

func TestLoadtestChatPassesOracle(t *testing.T) {
	n := testNode(t)
	rep := shortRun(t, n, loadtest.ScenarioChat, nil)
	// Every member of a room receives every message sent to it.
	if want := rep.Totals.Acked * 5; rep.Totals.Deliveries < want {
		t.Fatalf("%d deliveries for %d messages to rooms of 5", rep.Totals.Deliveries, rep.Totals.Acked)
	}
	if rep.Totals.Failed != 0 {
		t.Fatalf("%d sends failed: %v", rep.Totals.Failed, rep.Ops)
	}
}

func TestLoadtestLiveroomPassesOracle(t *testing.T) {
	n := testNode(t)
	rep := shortRun(t, n, loadtest.ScenarioLiveroom, func(c *loadtest.Config) { c.Sessions, c.Rate = 60, 40 })
	if rep.Totals.Deliveries != rep.Totals.Acked*60 {
		t.Fatalf("%d deliveries for %d messages to 60 viewers", rep.Totals.Deliveries, rep.Totals.Acked)
	}
}

func TestLoadtestStormResumes(t *testing.T) {
	n := testNode(t)
	rep := shortRun(t, n, loadtest.ScenarioStorm, func(c *loadtest.Config) { c.Sessions, c.Channels = 30, 6 })
	if rep.Totals.Resumed != 30 || rep.Latency["resume"].Count != 30 {
		t.Fatalf("resumed %d sessions (%d measured), want 30", rep.Totals.Resumed, rep.Latency["resume"].Count)
	}
}

// TestLoadtestCommand drives the subcommand as a user would, against a
// node that requires tokens, and checks the files it writes.
func TestLoadtestCommand(t *testing.T) {
	n := testNode(t, func(c *Config) { c.AuthSecret, c.DevAuth = "lt-secret", false })
	out := filepath.Join(t.TempDir(), "report")
	var stdout, stderr bytes.Buffer
	code := run([]string{"loadtest", "--target", "ws://" + n.Addr() + "/v1/ws", "--scenario", "soak",
		"--sessions", "20", "--channels", "4", "--rate", "100", "--warmup", "200ms", "--duration", "1s",
		"--interval", "200ms", "--seed", "3", "--out", out, "--secret", "lt-secret"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"oracle: OK", "send_ack", "message.send"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "sessions 20") {
		t.Errorf("no progress line:\n%s", stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep loadtest.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Oracle.OK || rep.Ops["messages.history"]["ok"] == 0 || len(rep.Series) == 0 || strings.Contains(rep.Command, "lt-secret") {
		t.Fatalf("report: ok=%v ops=%v points=%d command=%q", rep.Oracle.OK, rep.Ops, len(rep.Series), rep.Command)
	}
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil || !bytes.Contains(page, []byte(`data-plot="throughput"`)) {
		t.Fatalf("report.html: %v", err)
	}
}
