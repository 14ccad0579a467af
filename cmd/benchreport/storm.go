package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// stormRun is one connect storm against a fresh node: sessions dial and
// connect, 64 at a time, each a new user; then all of them join one live
// channel, 64 at a time. Each phase's wall time and both processes' CPU
// time per session split the live room's connect + join figure into its
// two halves and say which side spends it.
type stormRun struct {
	sessions               int
	connectS, joinS        float64 // wall time of each phase
	nodeConnect, nodeJoin  float64 // node CPU seconds per session
	genConnect, genJoin    float64 // generator CPU seconds per session
	failedConnects, failed int
}

// storm runs one connect storm of bin.
func (b *bench) storm(ctx context.Context, bin string) (stormRun, error) {
	node, err := startNode(ctx, bin)
	if err != nil {
		return stormRun{}, err
	}
	defer node.stop(b.o.log)
	n := 5000
	if b.o.quick {
		n = 300
	}
	r := stormRun{sessions: n}
	clients := make([]*client.Client, n)
	defer closeAll(clients)
	runID := fmt.Sprintf("%x", time.Now().UnixNano())
	// phase runs do(i) for every session from from on, dialWorkers at a
	// time, and returns the node's and this process's CPU seconds and the
	// wall time.
	phase := func(from int, do func(i int)) (nodeSecs, genSecs, wall float64, err error) {
		before, err := node0(ctx, node)
		if err != nil {
			return 0, 0, 0, err
		}
		g0, t0 := processCPU(), time.Now()
		forEach(from, n, do)
		wall, genSecs = time.Since(t0).Seconds(), processCPU()-g0
		after, err := node0(ctx, node)
		return after - before, genSecs, wall, err
	}
	var mu sync.Mutex
	nodeCPU, genCPU, wall, err := phase(0, func(i int) {
		c, err := dialIdle(ctx, node.url(), fmt.Sprintf("storm-%s-%d", runID, i))
		if err != nil {
			mu.Lock()
			r.failedConnects++
			mu.Unlock()
			return
		}
		clients[i] = c
	})
	if err != nil {
		return r, err
	}
	r.connectS, r.nodeConnect, r.genConnect = wall, nodeCPU/float64(n), genCPU/float64(n)
	if clients[0] == nil {
		return r, fmt.Errorf("connect storm: the first session could not connect")
	}
	ch := "storm-" + runID
	if err := clients[0].Call(ctx, protocol.OpChannelCreate, protocol.ChannelCreateArgs{ID: ch, Type: "live"}, nil); err != nil {
		return r, fmt.Errorf("connect storm: create the room: %w", err)
	}
	nodeCPU, genCPU, wall, err = phase(1, func(i int) {
		if c := clients[i]; c == nil || c.Call(ctx, protocol.OpChannelJoin, protocol.JoinArgs{Channel: ch}, nil) != nil {
			mu.Lock()
			r.failed++
			mu.Unlock()
		}
	})
	r.joinS, r.nodeJoin, r.genJoin = wall, nodeCPU/float64(n-1), genCPU/float64(n-1)
	return r, err
}

// node0 reads the node's CPU seconds.
func node0(ctx context.Context, p *nodeProc) (float64, error) {
	s, err := p.stats(ctx)
	return s.cpu, err
}

// storms runs the connect storm o.repeat times, alternating with the
// reference build when there is one.
func (b *bench) storms(ctx context.Context) error {
	for i := range b.o.repeat {
		type build struct {
			bin  string
			into *[]stormRun
		}
		builds := []build{{b.o.bin, &b.storm0}}
		if b.o.refBin != "" {
			ref := build{b.o.refBin, &b.stormRef}
			if i%2 == 0 {
				builds = []build{ref, builds[0]}
			} else {
				builds = append(builds, ref)
			}
		}
		for _, bl := range builds {
			b.log.Info("connect storm", "run", i+1, "bin", bl.bin)
			r, err := b.storm(ctx, bl.bin)
			if err != nil {
				return fmt.Errorf("connect storm (%s): %w", bl.bin, err)
			}
			*bl.into = append(*bl.into, r)
		}
	}
	return nil
}

// stormMarkdown writes the connect storm's section.
func (b *bench) stormMarkdown(p func(string, ...any)) {
	if len(b.storm0) == 0 {
		return
	}
	p("## Connect storm: %d new users connect, then join a live room\n\n", b.storm0[0].sessions)
	p("The live room's *connect + join* split in two: first every session dials and connects (`client.Dial`, development auth, each a new user whose actor activates and stores its profile), %d at a time; then every session joins one `live` channel, %d at a time. CPU is per session: the node's from its `process_cpu_seconds_total` before and after each phase, the generator's (this process) from `getrusage`. Both share the same cores, so a phase's time follows the sum of the two.\n\n", dialWorkers, dialWorkers)
	p("| build | run | connect | node CPU / connect | generator CPU / connect | join | node CPU / join | generator CPU / join | failed |\n|---|---|---|---|---|---|---|---|---|\n")
	us := func(s float64) string { return fmt.Sprintf("%.0f µs", s*1e6) }
	rows := func(name string, rs []stormRun) {
		for i, r := range rs {
			p("| %s | %d | %.2f s | %s | %s | %.2f s | %s | %s | %d |\n", name, i+1, r.connectS, us(r.nodeConnect), us(r.genConnect), r.joinS, us(r.nodeJoin), us(r.genJoin), r.failedConnects+r.failed)
		}
		med := func(f func(stormRun) float64) float64 {
			xs := make([]float64, len(rs))
			for i, r := range rs {
				xs[i] = f(r)
			}
			return median(xs)
		}
		p("| **%s** | **median** | **%.2f s** | **%s** | **%s** | **%.2f s** | **%s** | **%s** | |\n", name,
			med(func(r stormRun) float64 { return r.connectS }), us(med(func(r stormRun) float64 { return r.nodeConnect })), us(med(func(r stormRun) float64 { return r.genConnect })),
			med(func(r stormRun) float64 { return r.joinS }), us(med(func(r stormRun) float64 { return r.nodeJoin })), us(med(func(r stormRun) float64 { return r.genJoin })))
	}
	rows("this build", b.storm0)
	if len(b.stormRef) > 0 {
		rows("reference "+b.o.refName, b.stormRef)
	}
	p("\n")
}
