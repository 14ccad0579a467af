package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/loadtest"
)

// shortRun is a small, bounded run against an in-process node that must
// pass.
func shortRun(t *testing.T, n *Node, scenario string, mutate func(*loadtest.Config)) *loadtest.Report {
	t.Helper()
	rep := loadRun(t, n, scenario, mutate)
	if !rep.Oracle.OK || !rep.OK {
		var b bytes.Buffer
		rep.WriteSummary(&b)
		t.Fatalf("run failed:\n%s", b.String())
	}
	if rep.Setup.Connected != rep.Setup.Sessions || rep.Setup.Failed != 0 {
		t.Fatalf("%d of %d sessions connected, %d failed", rep.Setup.Connected, rep.Setup.Sessions, rep.Setup.Failed)
	}
	if rep.Totals.Acked == 0 || rep.Totals.Acked != rep.Oracle.Acked || rep.Latency["send_ack"].Count == 0 || rep.Latency["send_delivered"].Count == 0 {
		t.Fatalf("nothing measured: %+v %+v", rep.Totals, rep.Latency)
	}
	if rep.Oracle.HistoryMessages < rep.Oracle.Acked {
		t.Fatalf("history re-read %d messages for %d acknowledged", rep.Oracle.HistoryMessages, rep.Oracle.Acked)
	}
	return rep
}

// accounted checks that every scheduled send was settled once.
func accounted(t *testing.T, rep *loadtest.Report) {
	t.Helper()
	tot := rep.Totals
	if tot.Scheduled == 0 || tot.Scheduled != tot.Acked+tot.RateLimited+tot.Failed+tot.Unanswered {
		t.Fatalf("sends not accounted for: %+v", tot)
	}
}

// loadRun is a small, bounded run against an in-process node.
func loadRun(t *testing.T, n *Node, scenario string, mutate func(*loadtest.Config)) *loadtest.Report {
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
	accounted(t, rep)
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
	// Sends made while reconnecting were resent (and measured from their
	// intended time), not lost to not_connected.
	if rep.Totals.Failed != 0 || rep.Totals.Acked != rep.Totals.Scheduled {
		t.Fatalf("storm: %+v (ops %v)", rep.Totals, rep.Ops)
	}
	t.Logf("storm: %d sends resent after the drop", rep.Totals.Resent)
}

// TestLoadtestLiveroomReactions: viewers react to the newest message; the
// oracle finds every acknowledged reaction delivered and counted in
// history.
func TestLoadtestLiveroomReactions(t *testing.T) {
	n := testNode(t)
	rep := shortRun(t, n, loadtest.ScenarioLiveroom, func(c *loadtest.Config) { c.Sessions, c.Rate, c.ReactionShare = 30, 100, 0.3 })
	r := rep.Totals.Reactions
	if r.OK == 0 || r.Scheduled != r.OK+r.RateLimited+r.Failed+r.Skipped+r.Unanswered || rep.Oracle.ReactionsAcked == 0 || rep.Oracle.ReactionsAcked > r.OK {
		t.Fatalf("reactions %+v, oracle %d acked (ops %v)", r, rep.Oracle.ReactionsAcked, rep.Ops)
	}
}

// TestLoadtestAccountsForSetupFailures: with a dead target first in the
// list, the first dial falls back to the live one; a session that cannot
// connect at all (its token fails) counts as failed, so do its sends,
// and the run fails.
func TestLoadtestAccountsForSetupFailures(t *testing.T) {
	n := testNode(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + ln.Addr().String() + "/v1/ws"
	ln.Close()
	rep := loadRun(t, n, loadtest.ScenarioChat, func(c *loadtest.Config) {
		c.Targets = append([]string{dead}, c.Targets...)
		c.Token = func(user string) (string, error) {
			if strings.HasSuffix(user, "-u10") { // a member, not a creator
				return "", errors.New("no token for u10")
			}
			return "", nil // development auth
		}
	})
	if rep.Setup.Connected != 39 || rep.Setup.Failed != 1 || rep.Ops["connect"]["ok"] != 39 || rep.Ops["connect"]["transport"] != 1 {
		t.Fatalf("setup %+v, connects %v", rep.Setup, rep.Ops["connect"])
	}
	noSession := rep.Ops["message.send"]["no_session"]
	if rep.OK || noSession == 0 || rep.Totals.Failed != noSession || rep.Oracle.Counts["unverified"] != 1 {
		t.Fatalf("ok=%v no_session %d failed %d oracle %v", rep.OK, noSession, rep.Totals.Failed, rep.Oracle.Counts)
	}
	if !strings.Contains(rep.Result(), "1 sessions failed to set up") || !strings.Contains(rep.Result(), fmt.Sprintf("%d sends failed", noSession)) {
		t.Fatalf("result %q", rep.Result())
	}
}

// TestLoadtestUnverifiedFails: the node goes away once the sends were
// answered, before the final checks: no channel can be verified, and the
// command fails instead of reporting success.
func TestLoadtestUnverifiedFails(t *testing.T) {
	n := testNode(t)
	cfg := loadtest.DefaultConfig()
	cfg.Targets = []string{"ws://" + n.Addr() + "/v1/ws"}
	cfg.Sessions, cfg.Channels, cfg.Rate = 12, 3, 60
	cfg.Warmup, cfg.Duration, cfg.Ramp, cfg.Drain = 0, 500*time.Millisecond, 0, 2*time.Second
	cfg.Logger = testLogger()
	cfg.OnPhase = func(phase string) {
		if phase == loadtest.PhaseDrained {
			n.Close()
		}
	}
	var stdout bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := runLoadtest(ctx, cfg, "test", "", &stdout)
	if err == nil || !strings.Contains(err.Error(), "unverified 3") {
		t.Fatalf("err %v\n%s", err, stdout.String())
	}
	for _, want := range []string{"oracle: FAILED (unverified 3)", "final channel.watch failed", "result: FAILED"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestLoadtestZeroAndBadValues: an explicit 0 is 0, not the default, or
// refused where a zero would mean the default; negative values, and
// shares outside their scenario, are bad flags.
func TestLoadtestZeroAndBadValues(t *testing.T) {
	n := testNode(t)
	target := "ws://" + n.Addr() + "/v1/ws"
	// Flags are refused before anything is dialed. A closed port as the
	// target makes a value that is let through fail at once (no session
	// connects) rather than run a load test.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "ws://" + ln.Addr().String() + "/v1/ws"
	ln.Close()
	refused := func(want string, args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"loadtest", "--target", closed}, args...), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), want) {
			t.Errorf("%v: exit %d, want 2 and %q\n%s", args, code, want, stderr.String())
		}
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "-1"}, "must be finite and not negative"},
		{[]string{"--history-share", "-0.5"}, "history share must be in [0, 1)"},
		{[]string{"--reaction-share", "0.2"}, "reaction share applies to the liveroom scenario only"},
		{[]string{"--scenario", "liveroom", "--reaction-share", "1"}, "reaction share must be in [0, 1)"},
		{[]string{"--duration", "0"}, "--duration 0: must be more than 0 (leave it out for the default, 30s)"},
		{[]string{"--sessions", "0", "--drain", "0s"}, "--drain 0: must be more than 0"},
		{[]string{"--history-share", "0.2"}, "--history-share applies to the soak scenario only"},
		{[]string{"--stall-timeout", "0"}, "--stall-timeout 0: must not be 0"},
		{[]string{"--scenario", "liveroom", "--history-share", "0.1"}, "--history-share applies to the soak scenario only"},
	} {
		refused(bad.want, bad.args...)
	}
	runReport := func(args ...string) loadtest.Report {
		t.Helper()
		out := t.TempDir()
		var stdout, stderr bytes.Buffer
		args = append([]string{"loadtest", "--target", target, "--sessions", "6", "--channels", "2", "--warmup", "0s",
			"--duration", "500ms", "--quiet", "--out", out}, args...)
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, stdout.String(), stderr.String())
		}
		var rep loadtest.Report
		b, err := os.ReadFile(filepath.Join(out, "report.json"))
		if err == nil {
			err = json.Unmarshal(b, &rep)
		}
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	// --history-share 0 asks for none, which chat has: it is accepted.
	if rep := runReport("--rate", "0", "--history-share", "0"); rep.Config.Rate != 0 || rep.Totals.Scheduled != 0 || !rep.OK {
		t.Errorf("--rate 0: rate %v, %d sends scheduled, ok=%v", rep.Config.Rate, rep.Totals.Scheduled, rep.OK)
	}
	if rep := runReport("--scenario", "soak", "--rate", "40", "--history-share", "0"); rep.Totals.History.Scheduled != 0 || rep.Totals.Scheduled == 0 || !rep.OK {
		t.Errorf("--history-share 0: %+v, ok=%v", rep.Totals, rep.OK)
	}
	// A variable is as explicit as a flag.
	t.Setenv("SWITCHBOARD_DURATION", "0s")
	refused("--duration 0: must be more than 0")
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
