package main

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"

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
	cfg := Config{Listen: "127.0.0.1:0", DataDir: b.TempDir(), ClusterBind: "127.0.0.1:0", DevAuth: true, Detection: "fast", Logger: testLogger(),
		APIKey: apiKey}
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

// BenchmarkImportExport imports the history of TestImportExportRoundTrip
// (100,000 messages across 100 channels, 2,000 members, 300 users) into an
// empty node, then exports it: what a migration and a backup cost.
func BenchmarkImportExport(b *testing.B) {
	g := genSpec{channels: 100, messages: 1000, members: 20, users: 300, seed: 17}
	data := g.bytes(b)
	b.ResetTimer()
	for range b.N {
		n := benchNode(b)
		start := time.Now()
		res := importNDJSON(b, n.Addr(), data, false)
		imported := time.Since(start)
		if len(res.Errors) > 0 || res.Messages != int64(g.channels*g.messages) {
			b.Fatalf("import: %+v", res)
		}
		start = time.Now()
		st, err := client.Export(context.Background(), http.DefaultClient, "http://"+n.Addr(), apiKey, "", io.Discard, nil)
		if err != nil || st.Records != g.records() {
			b.Fatalf("export: %d records, %v", st.Records, err)
		}
		exported := time.Since(start)
		b.ReportMetric(float64(res.Messages)/imported.Seconds(), "import-msgs/s")
		b.ReportMetric(float64(len(data))/imported.Seconds()/(1<<20), "import-MiB/s")
		b.ReportMetric(float64(st.Records)/exported.Seconds(), "export-records/s")
	}
}
