package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is one `switchboard serve` child process. Signals go through
// os.Process, which on Linux holds a pidfd: a signal can never reach
// another process that reused the pid after this one was reaped.
type proc struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed once the process was reaped
	err  error         // its exit status, set before done closes
	// expected is set before the harness signals the process to end, so
	// that an exit it did not cause is reported.
	expected atomic.Bool
	// up is closed when the node printed its gossip line (it is serving).
	up chan struct{}
	// log receives the process's stdout and stderr (shared with the
	// node's other lives; closed by the last writer).
	log *os.File
}

// startProc starts bin with args, its stdout and stderr appended to
// logPath, in its own process group (a terminal's Ctrl-C reaches the
// harness only, which then ends its children itself). onExit runs once
// the process was reaped.
func startProc(bin string, args []string, logPath string, onExit func(*proc)) (*proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(lf, "\n=== %s chaos: %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), bin, strings.Join(Redact(args), " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv(os.Environ())
	cmd.Stderr = lf
	cmd.SysProcAttr = sysProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), up: make(chan struct{}), log: lf}
	fmt.Fprintf(lf, "=== chaos: pid %d\n", p.pid)
	read := make(chan struct{})
	go func() {
		defer close(read)
		p.readStdout(stdout)
	}()
	go func() {
		<-read // Wait closes the pipe: read it to its end first
		p.err = cmd.Wait()
		fmt.Fprintf(lf, "=== %s chaos: pid %d ended: %v\n", time.Now().UTC().Format(time.RFC3339Nano), p.pid, exitText(p.err))
		lf.Close()
		close(p.done)
		if onExit != nil {
			onExit(p)
		}
	}()
	return p, nil
}

// childEnv is the harness's environment without SWITCHBOARD_ variables:
// a node's configuration is the flags the harness gives it (and
// --serve-args), never a setting meant for the harness's own shell.
func childEnv(env []string) []string {
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "SWITCHBOARD_") })
}

// readStdout copies the node's stdout into its log and closes up when
// the node says it serves ("... gossip on ADDR, roles ...").
func (p *proc) readStdout(r io.Reader) {
	sc := bufio.NewScanner(r)
	upped := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(p.log, line)
		if !upped && strings.Contains(line, " gossip on ") {
			upped = true
			close(p.up)
		}
	}
	_, _ = io.Copy(p.log, r) // a line too long to scan
}

// exited reports whether the process was reaped.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the process was already reaped.
func (p *proc) signal(sig syscall.Signal) error {
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// end signals the process to end and waits up to timeout for it.
func (p *proc) end(sig syscall.Signal, timeout time.Duration) error {
	p.expected.Store(true)
	if err := p.signal(sig); err != nil {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("pid %d did not exit within %s of %v", p.pid, timeout, sig)
	}
}

// kill sends SIGKILL (which also ends a stopped process) and waits for
// the process to be reaped.
func (p *proc) kill() error { return p.end(syscall.SIGKILL, 10*time.Second) }

// waitUp waits for the node to print its gossip line; it fails when the
// process exits first.
func (p *proc) waitUp(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.up:
		return nil
	case <-p.done:
		return fmt.Errorf("exited at start: %s", exitText(p.err))
	case <-t.C:
		return fmt.Errorf("did not start serving within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Redact hides the values of flags that hold secrets (--api-key,
// --auth-secret, --secret) in args, also inside a --serve-args value.
func Redact(args []string) []string {
	out := slices.Clone(args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case name == "serve-args" && hasValue:
			out[i] = a[:len(a)-len(value)] + strings.Join(Redact(strings.Fields(value)), " ")
		case name == "serve-args" && i+1 < len(out):
			out[i+1] = strings.Join(Redact(strings.Fields(out[i+1])), " ")
			i++
		case secretFlag(name) && hasValue:
			out[i] = a[:len(a)-len(value)] + "REDACTED"
		case secretFlag(name) && i+1 < len(out):
			out[i+1] = "REDACTED"
			i++
		}
	}
	return out
}

func secretFlag(name string) bool {
	return name == "api-key" || name == "auth-secret" || name == "secret"
}
