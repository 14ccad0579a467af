package chaos

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeNode writes a script that stands in for `switchboard serve`: it
// fails its first start as a node whose port is borrowed does, then says
// it serves and waits (or, with exitAfter, exits by itself).
func fakeNode(t *testing.T, exitAfter bool) *Config {
	t.Helper()
	dir := t.TempDir()
	body := `#!/bin/sh
mark="$(dirname "$0")/started"
if [ ! -f "$mark" ]; then
  touch "$mark"
  echo 'listen: listen tcp 127.0.0.1:1: bind: address already in use' >&2
  exit 1
fi
echo "switchboard $8 listening on 127.0.0.1:1 (ws://127.0.0.1:1/v1/ws)"
echo "switchboard $8 gossip on 127.0.0.1:2, roles gateway,host"
`
	if exitAfter {
		body += "exit 3\n"
	} else {
		body += "exec sleep 60\n"
	}
	bin := filepath.Join(dir, "serve.sh")
	if err := os.WriteFile(bin, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Bin, cfg.Out, cfg.Nodes = bin, t.TempDir(), 1
	return &cfg
}

func TestStartRetriesABorrowedPortAndCloseEndsTheNode(t *testing.T) {
	t.Parallel()
	cfg := fakeNode(t, false)
	c, err := newCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	n := c.nodes[0]
	if err := c.start(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if len(n.pids) != 2 || n.proc == nil || n.proc.pid != n.pids[1] {
		t.Fatalf("pids %v, proc %+v: want a failed start, then a running one", n.pids, n.proc)
	}
	log, _ := os.ReadFile(n.log)
	for _, want := range []string{"address already in use", "gossip on", "--node-name n1", "ended: exit status 1"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	pid := n.proc.pid
	c.close()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pid %d alive after close: %v", pid, err)
	}
	if len(c.unexpected) != 0 {
		t.Fatalf("an exit the harness caused reported: %v", c.unexpected)
	}
}

func TestUnexpectedExitIsReported(t *testing.T) {
	t.Parallel()
	cfg := fakeNode(t, true)
	c, err := newCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.start(context.Background(), c.nodes[0]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := append([]string(nil), c.unexpected...)
		c.mu.Unlock()
		if len(got) == 1 && strings.Contains(got[0], "n1 (n1, pid") && strings.Contains(got[0], "exit status 3") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unexpected exits %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
