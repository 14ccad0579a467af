package main

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/actors/webhook"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/security"
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/gateway"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// metrics are the node's Prometheus metrics: every definition is here, and
// the hooks below feed them from the gateway, the actors and the store.
// Labels are bounded sets (op names, error codes, reasons, kinds, states);
// no channel, user or session id is ever a label.
type metrics struct {
	connects          *prometheus.CounterVec
	connectsInUpgrade prometheus.Counter
	disconnects       *prometheus.CounterVec
	framesIn          prometheus.Counter
	framesOut         prometheus.Counter
	bytesIn           prometheus.Counter
	bytesOut          prometheus.Counter
	queueDrops        *prometheus.CounterVec
	requests          *prometheus.HistogramVec
	deliveries        prometheus.Counter
	channelEvents     prometheus.Counter
	actorsActive      *prometheus.GaugeVec
	activations       *prometheus.CounterVec
	passivations      *prometheus.CounterVec
	raftRounds        *prometheus.HistogramVec
	diskStalls        prometheus.Counter
	// Webhooks (webhooks.go).
	webhookDeliveries *prometheus.CounterVec
	webhookLatency    prometheus.Histogram
	webhookGaps       prometheus.Counter
	webhookLost       prometheus.Counter
	webhooks          atomic.Pointer[webhook.Deliverer] // the backlog's source, once there is one
	reg               *prometheus.Registry
}

func newMetrics(reg *prometheus.Registry) *metrics {
	const ns = "switchboard"
	m := &metrics{
		reg: reg,
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connects_total",
			Help: "WebSocket upgrades by result: ok, refused (draining or at the session limit), refused_unauthenticated (at the bound of connections waiting to authenticate, overall or from one address), handshake_failed, origin_refused (a browser origin not allowed)."}, []string{"result"}),
		connectsInUpgrade: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "connects_in_upgrade_total",
			Help: "WebSocket upgrades (counted ok in connects_total) whose connect was offered in the upgrade and taken: one round trip fewer."}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "disconnects_total",
			Help: "Ended sessions by reason (client_closed, connection_lost, slow_consumer, ping_timeout, drain, shutdown, ...)."}, []string{"reason"}),
		framesIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "frames_received_total",
			Help: "Frames received from clients."}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "frames_sent_total",
			Help: "Frames sent to clients (several may share one WebSocket message)."}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "received_bytes_total",
			Help: "WebSocket message payload bytes received from clients."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "sent_bytes_total",
			Help: "WebSocket message payload bytes sent to clients."}),
		queueDrops: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "queue_drops_total",
			Help: "Frames dropped because a session's outbound queue was full or closed, by reason."}, []string{"reason"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "request_duration_seconds",
			Help:    "Time from a routed client request to its reply, by op and result code (ok or an error code).",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 15)}, []string{"op", "code"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "deliveries_total",
			Help: "Events queued to local sessions by channel fan-out."}),
		channelEvents: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "channel_events_received_total",
			Help: "Channel events this gateway received for its watchers: one per event per gateway, however many local sessions watch."}),
		actorsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "actors_active",
			Help: "Channel, user and directory-shard actors active on this node, by kind."}, []string{"kind"}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "actor_activations_total",
			Help: "Actor activations on this node, by kind."}, []string{"kind"}),
		passivations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "actor_passivations_total",
			Help: "Actor passivations and stops on this node, by kind."}, []string{"kind"}),
		raftRounds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "raft_round_duration_seconds",
			Help:    "Time of one round of the raft loop over every shard replica of the node (persist with at most one fsync, send, apply), by whether it fsynced.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 15)}, []string{"fsync"}),
		diskStalls: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "raft_disk_stalls_total",
			Help: "Times a raft round's write did not finish within two election timeouts: the node then led nothing until it did."}),
	}
	m.webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "webhook_deliveries_total",
		Help: "Webhook batches POSTed, by result: ok (2xx), failed (any other reply), timeout, error (no reply)."}, []string{"result"})
	m.webhookLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "webhook_latency_seconds",
		Help: "Time from POSTing a webhook batch to its reply (or failure).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	m.webhookGaps = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "webhook_gaps_total",
		Help: "Webhook gaps: channels whose undelivered events fell out of event retention (each reported to the receiver as webhook.gap)."})
	m.webhookLost = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "webhook_lost_events_total",
		Help: "Events that fell out of event retention before the webhook receiver acknowledged them."})
	reg.MustRegister(m.connects, m.connectsInUpgrade, m.disconnects, m.framesIn, m.framesOut, m.bytesIn, m.bytesOut, m.queueDrops,
		m.requests, m.deliveries, m.channelEvents, m.actorsActive, m.activations, m.passivations, m.raftRounds,
		m.diskStalls, m.webhookDeliveries, m.webhookLatency, m.webhookGaps, m.webhookLost)
	m.raftRounds.WithLabelValues("true")
	m.raftRounds.WithLabelValues("false")
	for r := range webhookResults {
		m.webhookDeliveries.WithLabelValues(r)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "webhook_backlog_events",
		Help: "Persisted events of the channels this node serves that the webhook receiver has not acknowledged yet."},
		func() float64 {
			if d := m.webhooks.Load(); d != nil {
				return float64(d.Backlog())
			}
			return 0
		}))
	for _, k := range []string{"channel", "user", "directory"} {
		m.actorsActive.WithLabelValues(k)
		m.activations.WithLabelValues(k)
		m.passivations.WithLabelValues(k)
	}
	m.connects.WithLabelValues("ok")
	return m
}

// gatewayHooks feeds the gateway's metrics.
func (m *metrics) gatewayHooks() *gateway.Metrics {
	return &gateway.Metrics{
		Connect:          func(r string) { m.connects.WithLabelValues(bounded(r, connectResults)).Inc() },
		ConnectInUpgrade: func() { m.connectsInUpgrade.Inc() },
		Disconnect:       func(r string) { m.disconnects.WithLabelValues(bounded(r, disconnectReasons)).Inc() },
		FramesIn:         func(n int) { m.framesIn.Add(float64(n)) },
		FramesOut: func(frames, bytes int) {
			m.framesOut.Add(float64(frames))
			m.bytesOut.Add(float64(bytes))
		},
		BytesIn: func(n int) { m.bytesIn.Add(float64(n)) },
		Request: func(op, code string, d time.Duration) {
			m.requests.WithLabelValues(opLabel(op), codeLabel(code)).Observe(d.Seconds())
		},
		Deliveries:    func(n int) { m.deliveries.Add(float64(n)) },
		ChannelEvents: func(n int) { m.channelEvents.Add(float64(n)) },
		QueueDrop:     func(r string) { m.queueDrops.WithLabelValues(bounded(r, dropReasons)).Inc() },
	}
}

// actorHooks feeds the actor metrics.
func (m *metrics) actorHooks() *actors.Metrics {
	return &actors.Metrics{
		Activated:   func(k string) { m.activations.WithLabelValues(bounded(k, actorKinds)).Inc() },
		Passivated:  func(k string) { m.passivations.WithLabelValues(bounded(k, actorKinds)).Inc() },
		ActiveDelta: func(k string, d int) { m.actorsActive.WithLabelValues(bounded(k, actorKinds)).Add(float64(d)) },
	}
}

// round is the raft engine's OnRound hook.
func (m *metrics) round(d time.Duration, synced bool) {
	label := "false"
	if synced {
		label = "true"
	}
	m.raftRounds.WithLabelValues(label).Observe(d.Seconds())
}

// stall is the raft engine's OnStall hook.
func (m *metrics) stall(stalled bool, _ time.Duration) {
	if stalled {
		m.diskStalls.Inc()
	}
}

// watchReplication exports the raft engine's counters, the shards the
// node holds and leads, and whether its disk is stalled.
func (m *metrics) watchReplication(e *shard.Engine) {
	m.reg.MustRegister(boolGauge("raft_disk_stalled",
		"1 while a raft round's write has taken longer than two election timeouts (the disk is not answering; the node leads nothing meanwhile), else 0.",
		e.Stalled))
	m.reg.MustRegister(&raftCollector{e: e,
		counters: prometheus.NewDesc("switchboard_raft_events_total",
			"Raft engine events, by kind: fsyncs (one per round at most, whatever the shards), entries_applied, messages_dropped (incoming, for a replica not here or another store), snapshots_sent, snapshots_received, snapshots_applied.",
			[]string{"kind"}, nil),
		replicas: prometheus.NewDesc("switchboard_raft_replicas",
			"Shard replicas this node holds, by role: leader, follower, learner.", []string{"role"}, nil)})
}

type raftCollector struct {
	e                  *shard.Engine
	counters, replicas *prometheus.Desc
}

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.counters; ch <- c.replicas }

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	for kind, v := range map[string]uint64{"fsyncs": s.Fsyncs, "entries_applied": s.Applied, "messages_dropped": s.Dropped,
		"snapshots_sent": s.SnapshotsSent, "snapshots_received": s.SnapshotsReceived, "snapshots_applied": s.SnapshotsApplied} {
		ch <- prometheus.MustNewConstMetric(c.counters, prometheus.CounterValue, float64(v), kind)
	}
	roles := map[string]int{"leader": 0, "follower": 0, "learner": 0}
	for _, st := range c.e.Statuses() {
		role := "follower"
		switch {
		case st.IsLeader:
			role = "leader"
		case st.Role() == shard.RoleLearner:
			role = "learner"
		}
		roles[role]++
	}
	for role, n := range roles {
		ch <- prometheus.MustNewConstMetric(c.replicas, prometheus.GaugeValue, float64(n), role)
	}
}

// watchGateway exports the open session count.
func (m *metrics) watchGateway(g *gateway.Gateway) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "switchboard", Name: "sessions_open",
		Help: "Client sessions open on this node (authenticated or not)."}, func() float64 { return float64(g.Sessions()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "switchboard", Name: "sessions_unauthenticated",
		Help: "Open connections that have not authenticated yet (bounded by --max-unauthenticated)."},
		func() float64 { return float64(g.Unauthenticated()) }))
}

// watchConnections exports --listen's connection count and limit.
func (m *metrics) watchConnections(l *gateway.ConnLimit) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "switchboard", Name: "connections_open",
		Help: "Connections open on --listen: sessions, HTTP, and those still sending their request."}, func() float64 { return float64(l.Open()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "switchboard", Name: "connections_max",
		Help: "The most connections --listen holds open at once (--max-connections)."}, func() float64 { return float64(l.Max()) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "switchboard", Name: "connections_refused_total",
		Help: "Connections to --listen refused because it held --max-connections."}, func() float64 { return float64(l.Refused()) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "switchboard", Name: "connections_evicted_total",
		Help: "HTTP keep-alive connections idle between requests closed to make room at --max-connections."}, func() float64 { return float64(l.Evicted()) }))
}

// boolGauge is a gauge of 1 while fn holds, else 0.
func boolGauge(name, help string, fn func() bool) prometheus.GaugeFunc {
	return boolGaugeWith(prometheus.GaugeOpts{Namespace: "switchboard", Name: name, Help: help}, fn)
}

// boolGaugeWith is boolGauge with its options whole (labels and all).
func boolGaugeWith(opts prometheus.GaugeOpts, fn func() bool) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(opts, func() float64 {
		if fn() {
			return 1
		}
		return 0
	})
}

// watchStore exports whether the store takes writes, the free space on
// its disk and whether the disk is slow.
func (m *metrics) watchStore(s *persistence.Store, speed *diskSpeed) {
	m.reg.MustRegister(boolGauge("store_disk_slow",
		"1 while the disk is slow (most fsynced raft writes over 100 ms for 10 s, until they are under 25 ms for 30 s): the node leads no shard meanwhile.",
		speed.Slow))
	m.reg.MustRegister(boolGauge("store_writable",
		"1 while the store takes writes, 0 while it refuses them (its disk is full, or it waits to re-open after its log failed).",
		s.Writable))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "switchboard", Name: "store_disk_free_bytes",
		Help: "Free space on the store's disk, as last measured (every second at most; -1: not watched)."},
		func() float64 { return float64(s.DiskFree()) }))
}

// watchFaults exports which injected faults hold now (--fault-injection
// only), so that a game day's dashboards show them: 1 while this node
// cuts, or slows, its links to some member, while its store's writes are
// stalled, or while its syncs are slowed.
func (m *metrics) watchFaults(p *cluster.Partition, s *persistence.Store) {
	kinds := map[string]func() bool{
		"partition": func() bool { return len(p.Nodes()) > 0 },
		"lag":       func() bool { return len(p.Lags()) > 0 },
	}
	if s != nil {
		kinds["disk_stall"] = s.WritesStalled
		kinds["disk_slow"] = func() bool { return s.SyncDelay() > 0 }
	}
	for kind, on := range kinds {
		m.reg.MustRegister(boolGaugeWith(prometheus.GaugeOpts{Namespace: "switchboard", Name: "fault_injected",
			Help:        "1 while an injected fault of this kind holds on this node (--fault-injection: /v1/cluster/partition, lag, disk-stall, disk-slow), else 0.",
			ConstLabels: prometheus.Labels{"kind": kind}}, on))
	}
}

// watchCluster exports the members this node sees, by state, its gossip
// joins, by result, and the depth of its inbox.
func (m *metrics) watchCluster(cl *cluster.Cluster) {
	m.reg.MustRegister(&clusterCollector{cl: cl,
		members: prometheus.NewDesc("switchboard_cluster_members",
			"Cluster members as this node sees them, by state (alive, suspect, dead, left).", []string{"state"}, nil),
		joins: prometheus.NewDesc("switchboard_cluster_join_attempts_total",
			"Gossip joins of seeds and former members, at start-up and retried in the background while they do not answer, by result (ok, failed).",
			[]string{"result"}, nil),
		refused: prometheus.NewDesc("switchboard_cluster_refused_total",
			"Strangers refused at this node's cluster ports, by port: gossip (no cluster key, another key, another cluster name) and transport (no valid node certificate at the TLS handshake).",
			[]string{"port"}, nil),
		lost: prometheus.NewDesc("switchboard_cluster_lost_messages_total",
			"Messages to other nodes the node-to-node transport dropped (a connection that broke, or had not come back yet), by kind: request (failed at once, to retry), reply (sent again once the link works), events (the gateway is told to watch the channel again once the link works), other.",
			[]string{"kind"}, nil),
		timeouts: prometheus.NewDesc("switchboard_cluster_request_timeouts_total",
			"Requests to other nodes that got no answer within their timeout (each cost its caller the whole timeout).", nil, nil)})
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "switchboard", Name: "inbox_depth",
		Help: "Messages (replies, channel events for fan-out) waiting in this node's inbox; a node short of CPU for fan-out shows here."},
		func() float64 { return float64(cl.InboxDepth()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "switchboard", Name: "inbox_event_bytes",
		Help: "Bytes of channel events waiting in this node's inbox for fan-out (bounded by --inbox-bytes)."},
		func() float64 { return float64(cl.InboxEventBytes()) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "switchboard", Name: "inbox_shed_total",
		Help: "Channel event batches this node's inbox shed because --inbox-bytes was reached; their channels are replayed to the watchers."},
		func() float64 { return float64(cl.InboxShed()) }))
}

type clusterCollector struct {
	cl                                      *cluster.Cluster
	members, joins, refused, lost, timeouts *prometheus.Desc
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.members
	ch <- c.joins
	ch <- c.refused
	ch <- c.lost
	ch <- c.timeouts
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[cluster.State]int{}
	for _, mb := range c.cl.View().Members() {
		counts[mb.State]++
	}
	for _, s := range []cluster.State{cluster.StateAlive, cluster.StateSuspect, cluster.StateDead, cluster.StateLeft} {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
	ok, failed := c.cl.JoinAttempts()
	ch <- prometheus.MustNewConstMetric(c.joins, prometheus.CounterValue, float64(ok), "ok")
	ch <- prometheus.MustNewConstMetric(c.joins, prometheus.CounterValue, float64(failed), "failed")
	gossip, transport := c.cl.Refused()
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(gossip), "gossip")
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(transport), "transport")
	for kind, n := range c.cl.LostMessages() {
		ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(n), kind)
	}
	ch <- prometheus.MustNewConstMetric(c.timeouts, prometheus.CounterValue, float64(c.cl.RequestTimeouts()))
}

// watchTLS exports when the certificates in use end.
func (m *metrics) watchTLS(s *nodeSecurity) {
	for name, id := range map[string]*security.Identity{"cluster": s.cluster, "client": s.client} {
		if id == nil {
			continue
		}
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "switchboard", Name: "tls_certificate_expiry_timestamp_seconds",
			Help:        "When the certificate in use ends (Unix time), by identity: cluster (--cluster-tls-cert) or client (--tls-cert). Files are re-read when they change.",
			ConstLabels: prometheus.Labels{"identity": name}},
			func() float64 { return float64(id.Certificate().NotAfter.Unix()) }))
	}
}

// Label values outside these sets become "other" (or "unknown" for ops),
// so a new reason in the gateway can never blow up cardinality.
var (
	connectResults    = set("ok", "refused", "refused_unauthenticated", "handshake_failed", "origin_refused")
	disconnectReasons = set("client_closed", "connection_lost", "frame_too_large", "slow_consumer", "drain", "logout",
		"shutdown", "ping_timeout", "write_failed", "auth_timeout", "resync", "session_limit")
	dropReasons = set("slow_consumer", "closed")
	actorKinds  = set("channel", "user", "directory")
)

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

func bounded(v string, allowed map[string]bool) string {
	if allowed[v] {
		return v
	}
	return "other"
}

// opLabel is op when the table has it, else "unknown".
func opLabel(op string) string {
	if _, ok := protocol.LookupOp(op); ok {
		return op
	}
	return "unknown"
}

func codeLabel(code string) string {
	if code == "ok" || protocol.Code(code).Known() {
		return code
	}
	return "other"
}
