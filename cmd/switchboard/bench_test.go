package main

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/loadtest"
)

// benchRun runs a loadtest scenario against an in-process node and reports
// what users pay: deliveries and acknowledgements per second and latency
// percentiles. The node and the generator share the process (and the
// machine), so compare runs with each other, not with a real deployment;
// `make bench` measures with the node in its own process.
func benchRun(b *testing.B, mutate func(*loadtest.Config)) {
	n := benchNode(b)
	cfg := loadtest.DefaultConfig()
	cfg.Targets = []string{"ws://" + n.Addr() + "/v1/ws"}
	cfg.Warmup, cfg.Duration = time.Second, 4*time.Second
	cfg.Ramp = 0
	cfg.Logger = testLogger()
	mutate(&cfg)
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		rep, err := loadtest.Run(ctx, cfg)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Oracle.OK {
			b.Fatalf("oracle: %s", rep.Oracle.Summary())
		}
		b.ReportMetric(rep.Totals.DeliveriesPerSec, "deliveries/s")
		b.ReportMetric(rep.Totals.AcksPerSec, "acks/s")
		b.ReportMetric(rep.Latency["send_ack"].P99, "ack-p99-ms")
		b.ReportMetric(rep.Latency["send_delivered"].P50, "delivered-p50-ms")
		b.ReportMetric(rep.Latency["send_delivered"].P99, "delivered-p99-ms")
	}
}

func benchNode(b *testing.B) *Node {
	b.Helper()
	cfg := Config{Listen: "127.0.0.1:0", DataDir: b.TempDir(), ClusterBind: "127.0.0.1:0", DevAuth: true, Detection: "fast", Logger: testLogger()}
	n, err := NewNode(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return n
}

// BenchmarkLiveroomFanout: one live channel, 2,000 viewers, 10 senders at
// 25 msg/s (50k deliveries/s offered).
func BenchmarkLiveroomFanout(b *testing.B) {
	benchRun(b, func(c *loadtest.Config) {
		c.Scenario, c.Sessions, c.Senders, c.Rate = loadtest.ScenarioLiveroom, 2000, 10, 25
	})
}

// BenchmarkDurableSends: 500 channels with one member each, 3,000 sends/s.
func BenchmarkDurableSends(b *testing.B) {
	benchRun(b, func(c *loadtest.Config) {
		c.Scenario, c.Sessions, c.Channels, c.Rate = loadtest.ScenarioChat, 500, 500, 3000
	})
}
