package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Real node processes, for tests that kill them.

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// binary builds switchboard, with its test hooks, once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "switchboard-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "switchboard")
		// testhooks: the fault-injection flags (testhooks.go).
		out, err := exec.Command("go", "build", "-tags", "testhooks", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is one running `switchboard serve`.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string // HTTP/WebSocket address
	tls    bool   // it serves wss:// and https://
	gossip string
	logf   string
	done   chan error

	outMu sync.Mutex // guards out
	out   strings.Builder
}

// stdout returns what the node has printed on its standard output.
func (p *proc) stdout() string {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	return p.out.String()
}

var (
	listenRE = regexp.MustCompile(`listening on (\S+) \((wss?)://`)
	gossipRE = regexp.MustCompile(`gossip on (\S+),`)
)

// startProc runs the binary with args and waits for it to print its
// addresses. A node restarted on a fixed port may find it taken for a
// moment (an outgoing connection's ephemeral port can land on it while it
// is free): that start is retried, for a bounded time.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p, log, exited := tryStartProc(t, args...)
		switch {
		case p != nil:
			return p
		case exited && strings.Contains(log, "address already in use") && time.Now().Before(deadline):
			time.Sleep(200 * time.Millisecond) // let the port's borrower finish
		case exited:
			t.Fatalf("node exited at start\n%s", log)
		default:
			t.Fatalf("node did not start\n%s", log)
		}
	}
}

// tryStartProc starts the binary once: the running proc, or its log and
// whether it exited (rather than hung) at start.
func tryStartProc(t *testing.T, args ...string) (*proc, string, bool) {
	t.Helper()
	logf := filepath.Join(t.TempDir(), "node.log")
	lf, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the log's directory and before the process's kill:
	// runs once the process is dead and before its log is removed.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of serve %s (last 32 KiB):\n%s", strings.Join(args, " "), tail(readFile(logf), 32<<10))
		}
	})
	cmd := exec.Command(binary(t), append([]string{"serve"}, args...)...)
	cmd.Stderr = lf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, logf: logf, done: make(chan error, 1)}
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.outMu.Lock()
			p.out.WriteString(line + "\n")
			p.outMu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				p.addr, p.tls = m[1], m[2] == "wss"
			}
			if m := gossipRE.FindStringSubmatch(line); m != nil {
				p.gossip = m[1]
				close(found)
			}
		}
	}()
	go func() { p.done <- cmd.Wait(); lf.Close() }()
	select {
	case <-found:
	case err := <-p.done:
		return nil, fmt.Sprintf("%v\n%s", err, readFile(logf)), true
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-p.done
		return nil, readFile(logf), false
	}
	t.Cleanup(func() { p.kill() })
	return p, "", false
}

// tail is the end of s, at most n bytes of it.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// kill sends SIGKILL and waits for the process to end.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("process %d did not die", p.cmd.Process.Pid)
	}
}

// term sends SIGTERM and waits up to timeout for a clean exit.
func (p *proc) term(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		return context.DeadlineExceeded
	}
}

func (p *proc) url() string {
	if p.tls {
		return "wss://" + p.addr + "/v1/ws"
	}
	return "ws://" + p.addr + "/v1/ws"
}

// base is the node's HTTP API root.
func (p *proc) base() string {
	if p.tls {
		return "https://" + p.addr
	}
	return "http://" + p.addr
}

// inOwnProcess runs the calling test alone in a new process of the test
// binary and reports whether this is that process (the caller then runs
// the test's body; otherwise the test is done). For tests whose node opens
// a gRPC client connection: protoactor-go's transport sets gRPC's global
// logger whenever a node starts, which the race detector reports against
// that connection's logging if another test's node starts in the process.
func inOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv("SWITCHBOARD_OWN_PROCESS") == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SWITCHBOARD_OWN_PROCESS="+t.Name())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s in its own process: %v\n%s", t.Name(), err, out)
	}
	return false
}
