package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/loadtest"
	"github.com/switchboard-chat/switchboard/loadtest/chaos"
)

// chaosArgs is a short run with the faults stage 1 survives without
// losing acknowledged data: a rolling restart, a drain (the node leaves,
// then comes back), and a SIGKILL followed by a restart on the same data;
// and a partition, a stalled disk, a slow disk (held 12 s, long enough to
// be judged slow) and slowed links, which need replication. (The kinds'
// order is the plan's: with seed 7 the drain is the second fault, which
// the interrupt test waits for, and every kind is injected by 30 s.)
func chaosArgs(out string, extra ...string) []string {
	return append([]string{"chaos", "--nodes", "3", "--warmup", "1s", "--duration", "34s",
		"--faults", "lag,disk-stall,disk-slow,restart,drain,kill,partition", "--seed", "7", "--fault-interval", "3s", "--down", "1s",
		"--sessions", "30", "--channels", "6", "--rate", "60", "--drain", "15s", "--out", out}, extra...)
}

// keptOnFailure is a directory for a chaos run's output that outlives a
// failing test (its report, evidence and the nodes' logs are what
// explains a rare failure), and is removed after a passing one.
func keptOnFailure(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "switchboard-"+t.Name()+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the run's output is kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

func readChaosReport(t *testing.T, out string) *chaos.Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep chaos.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

// gone checks that every process the run started has ended.
func gone(t *testing.T, rep *chaos.Report) {
	t.Helper()
	n := 0
	for _, nd := range rep.Nodes {
		for _, pid := range nd.PIDs {
			n++
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("node %s pid %d still exists after the run (kill 0: %v)", nd.Node, pid, err)
			}
		}
	}
	if n < len(rep.Nodes) {
		t.Fatalf("report lists %d pids for %d nodes", n, len(rep.Nodes))
	}
}

// TestChaosShortSeededRunPasses runs `switchboard chaos` (the binary, as
// a user would) with a seeded plan of restart, drain, kill, partition,
// disk-stall, lag and disk-slow, and
// expects it to pass: every fault injected and recovered from, every
// acknowledged message found exactly once, every child process gone. It
// then plants faults in the run's own evidence and expects the check to
// name them.
func TestChaosShortSeededRunPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	out := keptOnFailure(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), chaosArgs(out, "--quiet")...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	err := cmd.Run()
	if err != nil {
		t.Fatalf("chaos run failed: %v\n%s", err, output.String())
	}
	rep := readChaosReport(t, out)
	gone(t, rep)
	if !rep.OK || rep.Check == nil || !rep.Check.OK || rep.Load == nil || !rep.Load.Oracle.OK {
		t.Fatalf("report not OK: %v\n%s", rep.Problems, output.String())
	}
	var kinds []string
	for _, f := range rep.Faults {
		if f.Error != "" || f.RecoveredS <= f.AtS || f.PID == 0 {
			t.Fatalf("fault %+v not carried out and recovered from", f)
		}
		kinds = append(kinds, f.Kind)
	}
	for _, k := range []string{chaos.FaultRestart, chaos.FaultDrain, chaos.FaultKill, chaos.FaultPartition, chaos.FaultDiskStall, chaos.FaultLag, chaos.FaultDiskSlow} {
		if !slices.Contains(kinds, k) {
			t.Fatalf("no %s among the faults injected (%v); plan %+v", k, kinds, rep.Plan)
		}
	}
	if rep.Check.Acked == 0 || rep.Check.Acked != rep.Sends["ok"] || rep.Check.Channels != 6 || rep.Check.HistoryMessages < rep.Check.Acked {
		t.Fatalf("check covered too little: %+v, sends %v", rep.Check, rep.Sends)
	}
	// No wipe was asked for: every node kept its name through its lives.
	for _, nd := range rep.Nodes {
		if len(nd.Names) != 1 || nd.Names[0] != nd.Node {
			t.Fatalf("node %s ran as %v: no wipe was asked for", nd.Node, nd.Names)
		}
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`data-plot="timeline"`, `data-plot="latency"`, `data-plot="errors"`, `id="faults"`, "The run passed."} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("report.html lacks %s", want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "data")); !os.IsNotExist(err) {
		t.Errorf("data directories kept after a passing run: %v", err)
	}
	for _, nd := range rep.Nodes {
		if log, err := os.ReadFile(nd.Log); err != nil || !bytes.Contains(log, []byte("gossip on")) {
			t.Errorf("node log %s: %v", nd.Log, err)
		}
	}

	// The same check, fed the run's own evidence with planted faults.
	ev, err := chaos.ReadEvidence(out)
	if err != nil {
		t.Fatal(err)
	}
	if v := chaos.Check(ev.Acks, ev.Histories); !v.OK || v.Acked != rep.Check.Acked {
		t.Fatalf("re-check of the evidence: %s", v.Summary())
	}
	victim := ev.Acks[len(ev.Acks)/2]
	for i, h := range ev.Histories {
		if h.Channel == victim.Channel {
			ev.Histories[i].Messages = slices.DeleteFunc(slices.Clone(h.Messages), func(m chaos.Message) bool { return m.Segment == victim.Segment })
		}
	}
	stale := victim
	stale.ClientID, stale.MessageID = "planted", "planted-id"
	v := chaos.Check(append(ev.Acks, stale), ev.Histories)
	var lost, conflict bool
	for _, x := range v.Violations {
		lost = lost || (x.Kind == chaos.ViolationLost && x.Channel == victim.Channel && x.Segment == victim.Segment)
		conflict = conflict || (x.Kind == chaos.ViolationConflict && x.Channel == victim.Channel && x.Segment == victim.Segment)
	}
	if v.OK || !lost || !conflict {
		t.Fatalf("planted loss and conflict at %s segment %d: %s %v", victim.Channel, victim.Segment, v.Summary(), v.Violations)
	}
	t.Logf("%s; %d faults; %s", rep.Check.Summary(), len(rep.Faults), rep.Result())
}

// TestChaosInterruptEndsItsNodes interrupts a run (SIGINT, as Ctrl-C
// would) while a drained node is away, after a partition, and
// expects it to exit with status 1, write its report, and leave none of
// its node processes behind.
func TestChaosInterruptEndsItsNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	out := t.TempDir()
	cmd := exec.Command(binary(t), chaosArgs(out)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = &bytes.Buffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	up := make(chan struct{})
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if !once && strings.Contains(sc.Text(), "chaos: fault 2 drain: n") {
				once = true
				close(up)
			}
		}
	}()
	select {
	case <-up:
	case <-time.After(60 * time.Second):
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("the second fault did not start:\n%s", log.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("chaos did not exit within 60 s of SIGINT")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit after SIGINT: %v, want status 1", err)
	}
	rep := readChaosReport(t, out)
	gone(t, rep)
	if rep.OK || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0], "interrupted") {
		t.Fatalf("interrupted run reported %v", rep.Problems)
	}
	if _, err := os.Stat(filepath.Join(out, "data")); err != nil {
		t.Fatalf("an interrupted run keeps its data: %v", err)
	}
}

func TestChaosRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"chaos", "--faults", "kill,meteor"}, 2, `unknown fault "meteor"`},
		{[]string{"chaos", "--wipe-identity", "maybe"}, 2, "wipe identity"},
		{[]string{"chaos", "--nodes", "0"}, 2, "nodes must be"},
		{[]string{"chaos", "--stall-timeout", "0"}, 2, "--stall-timeout 0: must not be 0"},
		{[]string{"chaos", "--duration", "2s", "--faults", "kill", "--out", t.TempDir()}, 1, "no fault fits"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}

// TestLoadtestReportsEverySend: OnSend hears of every scheduled send
// once, acknowledged ones with their segment and message id.
func TestLoadtestReportsEverySend(t *testing.T) {
	n := testNode(t)
	var mu sync.Mutex
	var got []loadtest.SendOutcome
	rep := shortRun(t, n, loadtest.ScenarioChat, func(c *loadtest.Config) {
		c.OnSend = func(o loadtest.SendOutcome) {
			mu.Lock()
			got = append(got, o)
			mu.Unlock()
		}
	})
	mu.Lock()
	defer mu.Unlock()
	if int64(len(got)) != rep.Totals.Scheduled {
		t.Fatalf("%d outcomes for %d scheduled sends", len(got), rep.Totals.Scheduled)
	}
	seen := map[string]bool{}
	segs := map[string]map[uint64]bool{}
	acked := 0
	for _, o := range got {
		if seen[o.ClientID] || o.Channel == "" || o.User == "" || o.Intended.IsZero() || o.Issued.Before(o.Intended.Add(-time.Millisecond)) || o.Settled.Before(o.Issued) {
			t.Fatalf("bad outcome %+v", o)
		}
		seen[o.ClientID] = true
		if o.Code != "ok" {
			continue
		}
		acked++
		if o.Segment == 0 || o.MessageID == "" || segs[o.Channel][o.Segment] {
			t.Fatalf("acknowledged outcome %+v: no segment or id, or a segment twice", o)
		}
		if segs[o.Channel] == nil {
			segs[o.Channel] = map[uint64]bool{}
		}
		segs[o.Channel][o.Segment] = true
	}
	if int64(acked) != rep.Totals.Acked {
		t.Fatalf("%d acknowledged outcomes, report says %d", acked, rep.Totals.Acked)
	}
}
