package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// sampleMemory records the generator's and the nodes' memory every
// MemoryInterval (soak).
func (r *runner) sampleMemory(ctx context.Context) {
	urls := r.cfg.MetricsURLs
	if len(urls) == 0 {
		urls = metricsURLs(r.cfg.Targets)
	}
	hc := &http.Client{Transport: r.hc.Transport, Timeout: 5 * time.Second}
	tick := time.NewTicker(r.cfg.MemoryInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		smp := MemorySample{T: (r.now() - time.Duration(r.sendStart.Load())).Seconds(), GenHeapBytes: ms.HeapInuse, GenGoroutines: runtime.NumGoroutine()}
		for _, u := range urls {
			if nm, err := scrapeMemory(ctx, hc, u, r.cfg.APIKey); err == nil {
				smp.Nodes = append(smp.Nodes, nm)
			}
		}
		r.memory = append(r.memory, smp)
	}
}

// metricsURLs derives each target's /metrics URL (same host, http).
func metricsURLs(targets []string) []string {
	var out []string
	for _, t := range targets {
		u, err := url.Parse(t)
		if err != nil {
			continue
		}
		scheme := "http"
		if u.Scheme == "wss" {
			scheme = "https"
		}
		out = append(out, scheme+"://"+u.Host+"/metrics")
	}
	return out
}

// scrapeMemory reads a node's RSS, heap in use and goroutines from its
// Prometheus text output.
func scrapeMemory(ctx context.Context, hc *http.Client, u, apiKey string) (NodeMemory, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return NodeMemory{}, err
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return NodeMemory{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return NodeMemory{}, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	nm := NodeMemory{URL: u}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			nm.RSSBytes = v
		case "go_memstats_heap_inuse_bytes":
			nm.HeapBytes = v
		case "go_goroutines":
			nm.Goroutines = v
		}
	}
	return nm, sc.Err()
}
