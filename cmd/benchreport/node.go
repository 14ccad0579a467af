package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// nodeProc is a `switchboard serve` in its own process.
type nodeProc struct {
	cmd  *exec.Cmd
	addr string
	dir  string
	done chan error
}

var listenRE = regexp.MustCompile(`listening on (\S+) `)

// startNode runs the binary on loopback with a fresh data directory and
// waits for it to print its address.
func startNode(ctx context.Context, bin string, extra ...string) (*nodeProc, error) {
	dir, err := os.MkdirTemp("", "switchboard-bench-")
	if err != nil {
		return nil, err
	}
	return startNodeDir(ctx, bin, dir, extra...)
}

// startNodeDir is startNode on the data directory dir. What the node
// prints goes to dir/stdout too.
func startNodeDir(ctx context.Context, bin, dir string, extra ...string) (*nodeProc, error) {
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		return nil, err
	}
	// Every session comes from one address (like clients behind a proxy),
	// and the storm reconnects them all at once: no per-address bound.
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", dir, "--cluster-bind", "127.0.0.1:0",
		"--log-level", "warn", "--max-sessions", "200000", "--max-unauthenticated", "200000",
		"--max-unauthenticated-per-ip", "0"}, extra...)
	cmd := exec.Command(bin, args...)
	// The node's log (warnings and errors) stays in the data directory
	// while it runs; stop prints its tail when it has any.
	logf, err := os.Create(filepath.Join(dir, "node.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &nodeProc{cmd: cmd, dir: dir, done: make(chan error, 1)}
	found := make(chan string, 1)
	go func() {
		defer stdout.Close()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(stdout, sc.Text())
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case p.addr = <-found:
		// The gossip line follows the listen line at once.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := p.gossipAddr(); err == nil {
				break
			}
		}
		return p, nil
	case err := <-p.done:
		os.RemoveAll(dir)
		return nil, fmt.Errorf("node exited at start: %v", err)
	case <-time.After(30 * time.Second):
		p.stop(io.Discard)
		return nil, fmt.Errorf("node did not start")
	case <-ctx.Done():
		p.stop(io.Discard)
		return nil, ctx.Err()
	}
}

func (p *nodeProc) url() string { return "ws://" + p.addr + "/v1/ws" }

// stop ends the node (SIGTERM, then SIGKILL), reports the tail of its log
// to w when it logged anything, and removes its data.
func (p *nodeProc) stop(w io.Writer) {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if b, err := os.ReadFile(filepath.Join(p.dir, "node.log")); err == nil {
		var bad []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "level=ERROR") || (strings.Contains(l, "level=WARN") && !strings.Contains(l, "DEVELOPMENT AUTH")) {
				bad = append(bad, l)
			}
		}
		if len(bad) > 0 {
			fmt.Fprintf(w, "benchreport: node %s logged %d warnings and errors; the first and the last:\n%s\n%s\n", p.addr, len(bad), bad[0], bad[len(bad)-1])
		}
	}
	os.RemoveAll(p.dir)
}

// nodeStats are what the node's /metrics says about its memory, CPU and
// raft fsyncs.
type nodeStats struct{ rss, heap, stack, goroutines, cpu, fsyncs float64 }

// collect has the node run a full garbage collection: its profiler's
// heap endpoint does one before it answers (the node must run with
// --debug-pprof).
func (p *nodeProc) collect(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/debug/pprof/heap?gc=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("forcing a GC on the node: %s", resp.Status)
	}
	return err
}

// statsCollected reads the node's stats as they are and again after a
// full garbage collection.
func (p *nodeProc) statsCollected(ctx context.Context) (asIs, collected nodeStats, err error) {
	if asIs, err = p.stats(ctx); err != nil {
		return
	}
	if err = p.collect(ctx); err != nil {
		return
	}
	collected, err = p.stats(ctx)
	return
}

func (p *nodeProc) stats(ctx context.Context) (nodeStats, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nodeStats{}, err
	}
	defer resp.Body.Close()
	var s nodeStats
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			s.rss = v
		case "go_memstats_heap_inuse_bytes":
			s.heap = v
		case "go_memstats_stack_inuse_bytes":
			s.stack = v
		case "go_goroutines":
			s.goroutines = v
		case "process_cpu_seconds_total":
			s.cpu = v
		case `switchboard_raft_events_total{kind="fsyncs"}`:
			s.fsyncs = v
		}
	}
	return s, sc.Err()
}
