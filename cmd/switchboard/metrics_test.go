package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchboard-chat/switchboard/protocol"
)

func scrape(t *testing.T, n *Node) []byte {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, "http://"+n.Addr()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return b
}

// TestMetricsLint drives some traffic, then lints /metrics with promlint
// and checks Switchboard's own conventions: the switchboard_ prefix, every
// promised metric present, counters ending in _total, base units, and
// labels from bounded sets (never a channel, user or session id).
func TestMetricsLint(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	alice := dial(t, n, "alice")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "metrics-room", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := alice.Send(ctx, sendArgs("metrics-room", "m"+itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// An op the gateway does not know, and one that fails.
	_ = alice.Call(ctx, "no.such.op", map[string]any{}, nil)
	_, _ = alice.Join(ctx, "missing-room")
	// A second session comes and goes.
	dial(t, n, "bob").Close()

	var body []byte
	// Disconnects are counted once the server notices, and the session
	// leaves the open count when its goroutine ends: poll for both.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		body = scrape(t, n)
		if (bytes.Contains(body, []byte(`switchboard_disconnects_total{reason="client_closed"}`)) &&
			bytes.Contains(body, []byte("switchboard_sessions_open 1\n"))) || time.Now().After(deadline) {
			break
		}
		<-tick.C
	}

	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	want := map[string]dto.MetricType{
		"switchboard_sessions_open":                  dto.MetricType_GAUGE,
		"switchboard_connects_total":                 dto.MetricType_COUNTER,
		"switchboard_connects_in_upgrade_total":      dto.MetricType_COUNTER,
		"switchboard_disconnects_total":              dto.MetricType_COUNTER,
		"switchboard_frames_received_total":          dto.MetricType_COUNTER,
		"switchboard_frames_sent_total":              dto.MetricType_COUNTER,
		"switchboard_received_bytes_total":           dto.MetricType_COUNTER,
		"switchboard_sent_bytes_total":               dto.MetricType_COUNTER,
		"switchboard_queue_drops_total":              dto.MetricType_COUNTER,
		"switchboard_request_duration_seconds":       dto.MetricType_HISTOGRAM,
		"switchboard_deliveries_total":               dto.MetricType_COUNTER,
		"switchboard_channel_events_received_total":  dto.MetricType_COUNTER,
		"switchboard_actors_active":                  dto.MetricType_GAUGE,
		"switchboard_actor_activations_total":        dto.MetricType_COUNTER,
		"switchboard_actor_passivations_total":       dto.MetricType_COUNTER,
		"switchboard_raft_round_duration_seconds":    dto.MetricType_HISTOGRAM,
		"switchboard_raft_disk_stalls_total":         dto.MetricType_COUNTER,
		"switchboard_raft_disk_stalled":              dto.MetricType_GAUGE,
		"switchboard_store_disk_slow":                dto.MetricType_GAUGE,
		"switchboard_raft_events_total":              dto.MetricType_COUNTER,
		"switchboard_raft_replicas":                  dto.MetricType_GAUGE,
		"switchboard_cluster_members":                dto.MetricType_GAUGE,
		"switchboard_cluster_join_attempts_total":    dto.MetricType_COUNTER,
		"switchboard_cluster_refused_total":          dto.MetricType_COUNTER,
		"switchboard_cluster_lost_messages_total":    dto.MetricType_COUNTER,
		"switchboard_cluster_request_timeouts_total": dto.MetricType_COUNTER,
		"switchboard_inbox_depth":                    dto.MetricType_GAUGE,
		"switchboard_inbox_event_bytes":              dto.MetricType_GAUGE,
		"switchboard_inbox_shed_total":               dto.MetricType_COUNTER,
		"switchboard_sessions_unauthenticated":       dto.MetricType_GAUGE,
		"switchboard_connections_open":               dto.MetricType_GAUGE,
		"switchboard_connections_max":                dto.MetricType_GAUGE,
		"switchboard_connections_refused_total":      dto.MetricType_COUNTER,
		"switchboard_connections_evicted_total":      dto.MetricType_COUNTER,
		"switchboard_store_writable":                 dto.MetricType_GAUGE,
		"switchboard_store_disk_free_bytes":          dto.MetricType_GAUGE,
		"switchboard_webhook_deliveries_total":       dto.MetricType_COUNTER,
		"switchboard_webhook_latency_seconds":        dto.MetricType_HISTOGRAM,
		"switchboard_webhook_backlog_events":         dto.MetricType_GAUGE,
		"switchboard_webhook_gaps_total":             dto.MetricType_COUNTER,
		"switchboard_webhook_lost_events_total":      dto.MetricType_COUNTER,
	}
	// queue_drops has no series until a drop happens; the rest must show.
	for name, typ := range want {
		f, ok := fams[name]
		if !ok {
			if name != "switchboard_queue_drops_total" {
				t.Errorf("missing metric %s", name)
			}
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
	}
	forbidden := map[string]bool{"channel": true, "user": true, "user_id": true, "channel_id": true, "session": true, "session_id": true, "id": true}
	for name, f := range fams {
		if !strings.HasPrefix(name, "switchboard_") {
			continue
		}
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected metric %s: add it to this test's list", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		if f.GetType() != dto.MetricType_COUNTER && strings.HasSuffix(name, "_total") {
			t.Errorf("%s ends in _total but is not a counter", name)
		}
		for _, bad := range []string{"_milliseconds", "_ms", "_kilobytes", "_percent"} {
			if strings.Contains(name, bad) {
				t.Errorf("%s is not in base units", name)
			}
		}
		if len(f.GetMetric()) > 200 {
			t.Errorf("%s has %d series: unbounded labels?", name, len(f.GetMetric()))
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if forbidden[l.GetName()] {
					t.Errorf("%s has label %s", name, l.GetName())
				}
				if strings.Contains(l.GetValue(), "metrics-room") || l.GetValue() == "alice" || l.GetValue() == "no.such.op" {
					t.Errorf("%s has an id as a label value: %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	text := string(body)
	for _, s := range []string{
		`switchboard_request_duration_seconds_count{code="ok",op="message.send"} 3`,
		`switchboard_request_duration_seconds_count{code="not_found",op="channel.join"}`,
		`switchboard_cluster_members{state="alive"} 1`,
		// A node without seeds or former members has nothing to join.
		`switchboard_cluster_join_attempts_total{result="failed"} 0`,
		`switchboard_cluster_lost_messages_total{kind="reply"} 0`,
		`switchboard_cluster_request_timeouts_total 0`,
		// metrics-room, and missing-room: a join activates the channel
		// even when it does not exist.
		`switchboard_actors_active{kind="channel"} 2`,
		`switchboard_sessions_open 1`,
	} {
		if !strings.Contains(text, s) {
			i := strings.Index(text, "switchboard_actors_active{")
			t.Errorf("/metrics lacks %s (actors: %.80s)", s, text[max(i, 0):])
		}
	}
	if !strings.Contains(text, `switchboard_raft_round_duration_seconds_count{fsync="true"}`) || !strings.Contains(text, `switchboard_raft_replicas{role="leader"} 64`) {
		t.Error("no raft rounds observed, or the node does not lead its 64 shards")
	}
}
