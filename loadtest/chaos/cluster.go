package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one place of the cluster: fixed addresses (so clients and
// peers find it again after a restart), a data directory and a log, and
// the process running it now, if any.
type node struct {
	slot   int
	base   string // n1, n2 …: the place's name
	name   string // the identity it runs under now (--node-name)
	names  []string
	listen string // HTTP and WebSocket address
	gossip string // --cluster-bind
	data   string
	log    string
	proc   *proc // nil while down
	pids   []int
	wipes  int
}

func (n *node) ws() string    { return "ws://" + n.listen + "/v1/ws" }
func (n *node) base0() string { return "http://" + n.listen }

// cluster runs the nodes. It only ever signals processes it started, and
// close ends every one of them.
type cluster struct {
	cfg   *Config
	nodes []*node
	http  *http.Client

	mu     sync.Mutex // guards the fields below
	procs  map[*proc]*node
	closed bool
	// unexpected lists exits the harness did not cause.
	unexpected []string
	events     []string
}

// newCluster lays the nodes out: free loopback ports, and directories
// under out.
func newCluster(cfg *Config) (*cluster, error) {
	if cfg.APIKey == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		cfg.APIKey = hex.EncodeToString(b[:]) // the nodes' --api-key (args)
	}
	c := &cluster{cfg: cfg, procs: make(map[*proc]*node), http: &http.Client{Timeout: 5 * time.Second}}
	used := map[string]bool{}
	for i := range cfg.Nodes {
		n := &node{slot: i, base: fmt.Sprintf("n%d", i+1)}
		n.name = n.base
		n.names = []string{n.name}
		var err error
		if n.listen, err = freePort(used, false); err != nil {
			return nil, err
		}
		if n.gossip, err = freePort(used, true); err != nil {
			return nil, err
		}
		n.data = filepath.Join(cfg.Out, "data", n.base)
		n.log = filepath.Join(cfg.Out, "logs", n.base+".log")
		c.nodes = append(c.nodes, n)
	}
	for _, d := range []string{filepath.Join(cfg.Out, "data"), filepath.Join(cfg.Out, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// freePort finds a loopback port free now (for TCP, and for UDP too when
// udp is set: memberlist binds both), not among used.
func freePort(used map[string]bool, udp bool) (string, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		ok := !used[addr]
		if ok && udp {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				ok = false
			} else {
				pc.Close()
			}
		}
		ln.Close()
		if ok {
			used[addr] = true
			return addr, nil
		}
	}
	return "", errors.New("no free loopback port found")
}

// args are a node's `serve` arguments: the harness's, then the user's
// --serve-args (a later flag wins).
func (c *cluster) args(n *node) []string {
	var join []string
	for _, o := range c.nodes {
		if o != n {
			join = append(join, o.gossip)
		}
	}
	args := []string{"serve", "--listen", n.listen, "--cluster-bind", n.gossip, "--data", n.data,
		"--node-name", n.name, "--failure-detection", c.cfg.Detection,
		"--drain-timeout", c.cfg.DrainTimeout.String(), "--log-level", "info", "--api-key", c.cfg.APIKey,
		// The load comes from one address and reconnects in bursts.
		"--max-unauthenticated-per-ip", "0"}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	if slices.ContainsFunc(c.cfg.Faults, injected) {
		args = append(args, "--fault-injection")
	}
	return append(args, c.cfg.ServeArgs...)
}

// start starts n and waits until it serves. A port the node had a moment
// ago may be borrowed for a while by an outgoing connection: a start
// that fails on "address already in use" is retried for up to 20 s.
func (c *cluster) start(ctx context.Context, n *node) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var logged int64 // the log's size before this attempt
		if st, err := os.Stat(n.log); err == nil {
			logged = st.Size()
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return errors.New("the harness is closing")
		}
		p, err := startProc(c.cfg.Bin, c.args(n), n.log, c.exited)
		if err == nil {
			c.procs[p] = n
			n.pids = append(n.pids, p.pid)
		}
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("start %s: %w", n.base, err)
		}
		err = p.waitUp(ctx, 30*time.Second)
		if err == nil {
			n.proc = p
			c.event("%s started as %s (pid %d)", n.base, n.name, p.pid)
			return nil
		}
		if !p.exited() {
			_ = p.kill()
		}
		inUse := strings.Contains(logSince(n.log, logged), "address already in use")
		if !inUse || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("start %s: %w (see %s)", n.base, err, n.log)
		}
		select {
		case <-time.After(250 * time.Millisecond): // the port's borrower finishes
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// exited is called once a child was reaped.
func (c *cluster) exited(p *proc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.procs[p]
	delete(c.procs, p)
	select {
	case <-p.up:
	default:
		return // it never served: start reports that
	}
	if n != nil && !p.expected.Load() && !c.closed {
		c.unexpected = append(c.unexpected, fmt.Sprintf("%s (%s, pid %d) exited without being told to: %s; see %s",
			n.base, n.name, p.pid, exitText(p.err), n.log))
	}
}

// close SIGKILLs every child still running and waits for each.
func (c *cluster) close() {
	c.mu.Lock()
	c.closed = true
	var ps []*proc
	for p := range c.procs {
		ps = append(ps, p)
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { _ = p.kill() })
	}
	wg.Wait()
}

// running are the nodes with a process now.
func (c *cluster) running() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.proc != nil && !n.proc.exited() {
			out = append(out, n)
		}
	}
	return out
}

func (c *cluster) event(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.events = append(c.events, time.Now().UTC().Format("15:04:05.000")+" "+msg)
	c.mu.Unlock()
	if c.cfg.Progress != nil {
		fmt.Fprintln(c.cfg.Progress, "chaos: "+msg)
	}
}

// converge waits until every running node is ready and lists every
// running node, under its current name, as alive.
func (c *cluster) converge(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var why string
	for {
		why = c.notConverged(ctx)
		if why == "" {
			return nil
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("the cluster did not settle within %s: %s", timeout, why)
		}
	}
}

// notConverged says why the cluster has not settled ("" when it has).
func (c *cluster) notConverged(ctx context.Context) string {
	run := c.running()
	for _, n := range run {
		if code, err := c.get(ctx, n, "/readyz", nil); err != nil || code != http.StatusOK {
			return fmt.Sprintf("%s is not ready (%d %v)", n.base, code, err)
		}
		var view struct {
			Members []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"members"`
			Shards json.RawMessage `json:"shards"`
		}
		if code, err := c.get(ctx, n, "/v1/cluster", &view); err != nil || code != http.StatusOK {
			return fmt.Sprintf("%s: GET /v1/cluster: %d %v", n.base, code, err)
		}
		alive := map[string]bool{}
		for _, m := range view.Members {
			alive[m.Name] = m.State == "alive"
		}
		for _, o := range run {
			if !alive[o.name] {
				return fmt.Sprintf("%s does not see %s alive yet", n.base, o.name)
			}
		}
		if why := shardsUnsettled(view.Shards, min(c.replicas(), len(run))); why != "" {
			return fmt.Sprintf("%s sees %s yet", n.base, why)
		}
	}
	return ""
}

// injected reports whether a node injects a fault kind itself when told
// to (it cuts links, or stalls its disk): the nodes then run with
// --fault-injection.
func injected(kind string) bool {
	return kind == FaultPartition || kind == FaultSplit || kind == FaultOneway || kind == FaultDiskStall || kind == FaultLag || kind == FaultDiskSlow
}

// replicas is the nodes' --replicas: 3 unless --serve-args says (the last
// one given wins).
func (c *cluster) replicas() int {
	n := 3
	for i, a := range c.cfg.ServeArgs {
		v, ok := strings.CutPrefix(a, "--replicas=")
		if !ok && a == "--replicas" && i+1 < len(c.cfg.ServeArgs) {
			v, ok = c.cfg.ServeArgs[i+1], true
		}
		if r, err := strconv.Atoi(v); ok && err == nil && r > 0 {
			n = r
		}
	}
	return n
}

// shardsUnsettled says which shard, in the shards a replicated build
// lists in GET /v1/cluster, keeps the cluster from having settled, and why
// ("" when none does): one without a leader, or one with fewer than want
// live voters or with a replica being added or removed. After a fault the
// cluster has not recovered until every shard is back to its full
// copies, or the next fault could take a majority (or the only copy). The
// shards are a list, or an object by id, of objects with a "leader" and
// "replicas"; anything else is not understood, and holds nothing up.
func shardsUnsettled(raw json.RawMessage, want int) string {
	type shard struct {
		ID       json.RawMessage `json:"id"`
		Leader   json.RawMessage `json:"leader"`
		Replicas []struct {
			Role  string `json:"role"`
			State string `json:"state"`
		} `json:"replicas"`
	}
	var list []shard
	if json.Unmarshal(raw, &list) != nil {
		var byID map[string]shard
		if json.Unmarshal(raw, &byID) != nil {
			return ""
		}
		for _, id := range slices.Sorted(maps.Keys(byID)) {
			s := byID[id]
			s.ID = json.RawMessage(strconv.Quote(id))
			list = append(list, s)
		}
	}
	for i, s := range list {
		id := strings.Trim(string(s.ID), `"`)
		if id == "" {
			id = strconv.Itoa(i)
		}
		if l := strings.TrimSpace(string(s.Leader)); l == "" || l == "null" || l == `""` || l == "0" {
			return "no leader for shard " + id
		}
		if len(s.Replicas) == 0 {
			continue // not listed: nothing to check
		}
		voters, changing := 0, false
		for _, r := range s.Replicas {
			switch {
			case r.Role != "voter":
				changing = true
			case r.State != "down":
				voters++
			}
		}
		if voters < want || changing {
			return fmt.Sprintf("shard %s on %d live voters (%d wanted, none being added or removed)", id, voters, want)
		}
	}
	return ""
}

// get GETs path from n and decodes a 200 answer into out (when not nil).
func (c *cluster) get(ctx context.Context, n *node, path string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.base0()+path, nil)
	if err != nil {
		return 0, err
	}
	return c.do(req, out)
}

func (c *cluster) do(req *http.Request, out any) (int, error) {
	if c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s: %w", req.URL.Path, err)
		}
	}
	return res.StatusCode, nil
}

// located is who leads a channel's shard, as GET /v1/cluster/locate says.
type located struct {
	node  *node
	shard string
}

// locate asks a running node which node leads channel's shard. It
// reports false when no node answers the question (a build without
// replication answers 404) or the leader is none of the harness's nodes.
func (c *cluster) locate(ctx context.Context, channel string) (located, bool) {
	var ans struct {
		Shard  json.RawMessage `json:"shard"`
		Leader json.RawMessage `json:"leader"`
	}
	for _, n := range c.running() {
		code, err := c.get(ctx, n, "/v1/cluster/locate?channel="+url.QueryEscape(channel), &ans)
		if err != nil || code != http.StatusOK {
			continue
		}
		if leader := c.nodeOf(ans.Leader); leader != nil {
			return located{node: leader, shard: strings.Trim(string(ans.Shard), `"`)}, true
		}
	}
	return located{}, false
}

// nodeOf finds the node a locate answer's leader names: a string (node
// name, HTTP or gossip address) or an object with one of those.
func (c *cluster) nodeOf(raw json.RawMessage) *node {
	var keys []string
	var s string
	if json.Unmarshal(raw, &s) == nil {
		keys = []string{s}
	} else {
		var o map[string]any
		if json.Unmarshal(raw, &o) != nil {
			return nil
		}
		for _, f := range []string{"name", "node", "http", "address"} {
			if v, ok := o[f].(string); ok {
				keys = append(keys, v)
			}
		}
	}
	for _, k := range keys {
		for _, n := range c.nodes {
			if k != "" && (k == n.name || k == n.listen || k == n.gossip) {
				return n
			}
		}
	}
	return nil
}

// forget tells a running node other than n to forget identity name (n's
// old identity after a wipe), retrying until a node accepts it: a node
// refuses while it still sees name alive.
func (c *cluster) forget(ctx context.Context, n *node, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		for _, o := range c.running() {
			if o == n {
				continue
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.base0()+"/v1/cluster/forget?node="+url.QueryEscape(name), nil)
			if err != nil {
				return err
			}
			code, err := c.do(req, nil)
			if err == nil && code == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s answered %d %v", o.base, code, err)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("no node would forget %s within %s (last: %s)", name, timeout, last)
		}
	}
}

// cut cuts n off from the nodes named (PUT /v1/cluster/partition), or
// heals every cut of n when there are none (DELETE).
func (c *cluster) cut(ctx context.Context, n *node, names []string) error {
	if len(names) == 0 {
		return c.inject(ctx, n, http.MethodDelete, "/v1/cluster/partition")
	}
	return c.inject(ctx, n, http.MethodPut, "/v1/cluster/partition?nodes="+url.QueryEscape(strings.Join(names, ",")))
}

// lag slows n's links to the nodes named by l (PUT /v1/cluster/lag), or
// ends every lag of n when there are none (DELETE).
func (c *cluster) lag(ctx context.Context, n *node, names []string, l lagSpec) error {
	if len(names) == 0 {
		return c.inject(ctx, n, http.MethodDelete, "/v1/cluster/lag")
	}
	q := url.Values{"nodes": {strings.Join(names, ",")}, "delay": {l.Delay.String()}, "jitter": {l.Jitter.String()},
		"loss": {strconv.FormatFloat(l.Loss, 'g', -1, 64)}}
	return c.inject(ctx, n, http.MethodPut, "/v1/cluster/lag?"+q.Encode())
}

// stallDisk stalls n's store's writes (PUT /v1/cluster/disk-stall), or
// lets them run again (DELETE).
func (c *cluster) stallDisk(ctx context.Context, n *node, on bool) error {
	method := http.MethodDelete
	if on {
		method = http.MethodPut
	}
	return c.inject(ctx, n, method, "/v1/cluster/disk-stall")
}

// slowDisk adds d to every sync of n's store (PUT /v1/cluster/disk-slow),
// or makes them fast again when d is 0 (DELETE).
func (c *cluster) slowDisk(ctx context.Context, n *node, d time.Duration) error {
	if d == 0 {
		return c.inject(ctx, n, http.MethodDelete, "/v1/cluster/disk-slow")
	}
	return c.inject(ctx, n, http.MethodPut, "/v1/cluster/disk-slow?delay="+d.String())
}

// inject calls one of n's fault-injection endpoints, which answer 200.
func (c *cluster) inject(ctx context.Context, n *node, method, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.base0()+path, nil)
	if err != nil {
		return err
	}
	code, err := c.do(req, nil)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("answered %d (is it started with --fault-injection?)", code)
	}
	if err != nil {
		return fmt.Errorf("%s %s on %s: %w", method, path, n.base, err)
	}
	return nil
}

// wipe deletes n's data directory (n is down).
func (c *cluster) wipe(n *node) error {
	if err := os.RemoveAll(n.data); err != nil {
		return err
	}
	n.wipes++
	if c.cfg.WipeIdentity == IdentityNew {
		n.name = n.base + "-w" + strconv.Itoa(n.wipes)
		n.names = append(n.names, n.name)
	}
	return nil
}

// stop and cont pause and resume n's process.
func (c *cluster) stop(n *node) error { return n.proc.signal(syscall.SIGSTOP) }
func (c *cluster) cont(n *node) error { return n.proc.signal(syscall.SIGCONT) }

// logSince returns what a log gained after offset (at most 64 KiB).
func logSince(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return string(b)
}
