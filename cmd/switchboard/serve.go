package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/gateway"
	"github.com/switchboard-chat/switchboard/protocol"
)

var errUsage = errors.New("usage")

// serveFlags defines serve's flags on fs and returns the config they fill.
func serveFlags(fs *flag.FlagSet) (*Config, func() error) {
	cfg := &Config{}
	lim := protocol.DefaultLimits()
	// Defaults come from each package's DefaultConfig.
	cl, gw, act := cluster.DefaultConfig(), gateway.DefaultConfig(), actors.DefaultConfig()
	roleNames := make([]string, len(cl.Roles))
	for i, r := range cl.Roles {
		roleNames[i] = string(r)
	}
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address for WebSocket (/v1/ws), the HTTP API, /healthz, /readyz and (unless --admin-listen) the operator endpoints; port 0 picks a free one")
	fs.StringVar(&cfg.DataDir, "data", "./data", "data directory (the Pebble store and the node's name)")
	fs.BoolVar(&cfg.DevAuth, "dev-auth", false, "accept connect {user_id} without a token (always on when no auth key is set; with a key anyone may connect as anyone, and the node logs an ERROR)")
	fs.StringVar(&cfg.AuthSecret, "auth-secret", "", "HS256 secret that signs session and join tokens")
	fs.StringVar(&cfg.AuthPublicKey, "auth-public-key", "", "PEM file with the Ed25519 public key that verifies EdDSA tokens")
	fs.StringVar(&cfg.APIKey, "api-key", "", "server API keys, comma-separated (rotate by adding the new key, then dropping the old): the HTTP API's admin credential, and Authorization: Bearer <key> opens the operator endpoints (/v1/cluster, /metrics); without one, endpoints that change the cluster are off")
	fs.StringVar(&cfg.AdminListen, "admin-listen", "", "address for the operator endpoints (/v1/cluster, /metrics, /debug/pprof), also serving /healthz and /readyz; default: --listen. When separate, they leave --listen; without --api-key the read-only ones are open here, so keep it private. It serves TLS with --tls-cert when --listen does")
	fs.StringVar(&cfg.NodeName, "node-name", "", "unique node name; default: the name stored in the data directory, made up on first start")
	fs.StringVar(&cfg.ClusterBind, "cluster-bind", cl.GossipAddr, "gossip (memberlist) address; port 0 picks a free one")
	fs.StringVar(&cfg.RemoteBind, "remote-bind", "", "actor transport address; default: the cluster-bind host with a free port")
	join := fs.String("join", "", "comma-separated gossip addresses of existing members; retried in the background until one answers (/readyz answers 503 until then)")
	roles := fs.String("roles", strings.Join(roleNames, ","), "what this node does: gateway (client sessions), host (channel and user actors), or both")
	fs.StringVar(&cfg.ClusterName, "cluster-name", cl.ClusterName, "cluster name; nodes only talk to nodes with the same name")
	detection := fs.String("failure-detection", string(cl.Detection), "failure detection preset: lan (conservative: members declared dead in ~5 s, a shard's leader replaced in 1-2 s) or fast (loopback/tests: under a second for both)")
	fs.IntVar(&lim.MaxFrameBytes, "max-frame-bytes", lim.MaxFrameBytes, "largest WebSocket message a client may send")
	fs.IntVar(&lim.MaxTextLen, "max-text-len", lim.MaxTextLen, "largest message text in bytes")
	fs.IntVar(&lim.MaxInflight, "max-inflight", lim.MaxInflight, "requests a session may have outstanding")
	fs.IntVar(&cfg.Gateway.QueueFrames, "queue-frames", gw.QueueFrames, "frames a session's outbound queue holds before the session is dropped as slow")
	fs.IntVar(&cfg.Gateway.QueueBytes, "queue-bytes", gw.QueueBytes, "bytes a session's outbound queue holds before the session is dropped as slow")
	fs.DurationVar(&cfg.Gateway.CoalesceWindow, "coalesce-window", gw.CoalesceWindow, "a channel's events are written to its watchers at most once per window, several per write; a quieter channel's are written at once (negative: always at once)")
	fs.IntVar(&cfg.Gateway.Writers, "writers", gw.Writers, "goroutines that write every session's queued messages (default: one per core but one, at least one)")
	fs.Int64Var(&cfg.InboxBytes, "inbox-bytes", cl.InboxEventBytes, "bytes of channel events the node's inbox holds for fan-out; past it event batches are shed and their channels replayed to the watchers")
	fs.IntVar(&cfg.Gateway.MaxSessions, "max-sessions", gw.MaxSessions, "authenticated sessions this node accepts")
	fs.IntVar(&cfg.Gateway.MaxUnauthenticated, "max-unauthenticated", gw.MaxUnauthenticated, "connections waiting to authenticate this node accepts, apart from --max-sessions")
	fs.IntVar(&cfg.Gateway.MaxUnauthenticatedPerIP, "max-unauthenticated-per-ip", gw.MaxUnauthenticatedPerIP, "connections waiting to authenticate this node accepts from one client address (0: no bound; behind a proxy every client has its address)")
	fs.Float64Var(&cfg.Gateway.SessionRate, "session-rate", gw.SessionRate, "requests a WebSocket session may make per second on average (ping and logout are free), and a user's HTTP API requests with a session token; past it a request is answered rate_limited with retry_after_ms (0: no bound)")
	fs.IntVar(&cfg.Gateway.SessionBurst, "session-burst", gw.SessionBurst, "requests a WebSocket session may make at once, above --session-rate (a client's start-up: joining and watching its channels)")
	fs.IntVar(&cfg.MaxConnections, "max-connections", 0, "connections --listen holds open at once, sessions, HTTP and those still sending their request alike; at it the HTTP keep-alive connection idle longest is closed to make room, and with none idle a new one is answered 503 and closed (default: the open-files limit less 2048 descriptors kept for storage and the cluster)")
	fs.DurationVar(&cfg.HTTPIdleTimeout, "http-idle-timeout", defaultHTTPIdleTimeout, "an HTTP keep-alive connection idle this long between requests is closed (WebSocket sessions are kept by their pings)")
	fs.DurationVar(&cfg.Gateway.AuthTimeout, "auth-timeout", gw.AuthTimeout, "how long a connection may wait before connect; then it is closed")
	fs.DurationVar(&cfg.Gateway.PresenceInterval, "presence-interval", gw.PresenceInterval, "presence heartbeat: gateways renew their sessions' presence this often, and a session not renewed for three intervals counts as gone (use one value on every node)")
	fs.Int64Var(&lim.MaxFileBytes, "max-file-bytes", lim.MaxFileBytes, "largest file POST /v1/files accepts")
	fileTypes := fs.String("file-types", strings.Join(gw.Files.AllowedTypes, ","), "comma-separated MIME types POST /v1/files accepts, exact (application/pdf) or families (image/*)")
	fs.Int64Var(&cfg.DiskReserve, "disk-reserve", 64<<20, "bytes of free space the store keeps on its disk: writes answer unavailable while less than half of it is free, and the other half is a ballast file (<data>/store/BALLAST) released if a write finds the disk full anyway; writes resume by themselves once there is room. A node does not start with less free (negative: no reserve)")
	fs.Int64Var(&cfg.HeapFloor, "gc-heap-floor", 64<<20, "bytes the Go heap may reach before the garbage collector paces itself by GOGC: below it the node collects rarely, which saves CPU while sessions arrive, at the price of up to this much garbage held (0: GOGC alone; GOMEMLIMIT still bounds the heap)")
	fs.DurationVar(&cfg.PassivateAfter, "passivate-after", act.PassivateAfter, "idle time after which an actor with no watchers leaves memory")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", time.Minute, "on SIGTERM, how long to hand sessions and channels over before exiting (0: exit at once)")
	shards := fs.Uint("shards", 0, "shard count of a cluster this node forms (default 64); fixed for the cluster's life: a node of a cluster with another count refuses to start when this is set")
	fs.IntVar(&cfg.Replicas, "replicas", 3, "replicas of each shard (fewer while fewer hosts exist)")
	fs.DurationVar(&cfg.ReplaceDeadAfter, "replace-dead-after", 5*time.Minute, "how long a host may stay dead before its replicas are re-created on other hosts")
	testHooksSet := testHookFlags(fs, &cfg.Test)
	sec := &cfg.Security
	fs.StringVar(&sec.ClusterKey, "cluster-key", "", "gossip encryption: base64 AES keys of 16, 24 or 32 bytes, comma-separated; the first encrypts, all are accepted (switchboard certs create-cluster-key makes one)")
	fs.StringVar(&sec.ClusterKeyFile, "cluster-key-file", "", "file of cluster keys (as --cluster-key, or one per line), re-read every second: edit it on every node to rotate keys without a restart")
	fs.StringVar(&sec.ClusterTLSCA, "cluster-tls-ca", "", "PEM CA bundle the node certificates of peers must chain to (mutual TLS between nodes); re-read when it changes")
	fs.StringVar(&sec.ClusterTLSCert, "cluster-tls-cert", "", "PEM node certificate (switchboard certs create-node) for the node-to-node transport; re-read when it changes")
	fs.StringVar(&sec.ClusterTLSKey, "cluster-tls-key", "", "private key of --cluster-tls-cert")
	fs.StringVar(&sec.ClusterTLSCRL, "cluster-tls-crl", "", "PEM revocation list of --cluster-tls-ca (switchboard certs revoke): a peer whose node certificate it names is refused at the handshake, and its connections are cut when the list names it later; re-read when it changes")
	fs.StringVar(&sec.TLSCert, "tls-cert", "", "PEM certificate (and intermediates) to serve --listen over TLS: wss://, https://, HTTP/2 for the HTTP API; re-read when it changes")
	fs.StringVar(&sec.TLSKey, "tls-key", "", "private key of --tls-cert")
	fs.StringVar(&sec.TLSClientCA, "tls-client-ca", "", "PEM CA bundle: clients of --listen must present a certificate that chains to it (switchboard certs create-client)")
	fs.StringVar(&sec.TLSClientCRL, "tls-client-crl", "", "PEM revocation list of --tls-client-ca (switchboard certs revoke): clients whose certificate it names are refused at the handshake; re-read when it changes")
	fs.StringVar(&sec.TLSPeerCA, "tls-peer-ca", "", "PEM CA bundle other nodes' --tls-cert may chain to, besides the system's roots and --cluster-tls-ca: trusted when this node forwards a request to another (a file download, a drain, its metrics); re-read when it changes")
	fs.BoolVar(&sec.Insecure, "insecure", false, "let the cluster ports run off loopback without --cluster-key and node certificates (an ERROR at start-up: anyone reaching them can join and act as any user)")
	origins := fs.String("allowed-origins", "", "browser origins that may open WebSocket sessions and call the HTTP API (CORS) besides the page's own host, comma-separated: https://chat.example.com, *.example.com, http://localhost:*, or * for any (development auth also allows loopback origins)")
	fs.BoolVar(&cfg.Pprof, "debug-pprof", false, "serve Go's profiler at /debug/pprof/ with the operator endpoints (and under their rules)")
	fs.BoolVar(&cfg.FaultInjection, "fault-injection", false, "let an operator key cut this node off from others (PUT/DELETE /v1/cluster/partition) or stall its store's writes (PUT/DELETE /v1/cluster/disk-stall), for the chaos command's partition, split, oneway and disk-stall faults; never in production")
	// Webhooks (webhooks.go).
	fs.StringVar(&cfg.Webhook.URL, "webhook-url", "", "POST every persisted channel event to this URL, in batches, at least once, in seq order per channel")
	fs.StringVar(&cfg.Webhook.Secret, "webhook-secret", "", "secret of the webhook's HMAC-SHA256 signature (X-Switchboard-Signature: sha256=<hex>); required with --webhook-url")
	hookEvents := fs.String("webhook-events", "", "comma-separated events the webhook delivers (default: every persisted event), e.g. message.new,message.updated")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	return cfg, func() error {
		cfg.Limits = lim
		cfg.Gateway.Files.AllowedTypes = splitList(*fileTypes)
		cfg.Join = splitList(*join)
		testHooksSet()
		sec.AllowedOrigins = splitList(*origins)
		if *hookEvents != "" {
			cfg.Webhook.Events = splitList(*hookEvents)
		}
		if *shards > 1<<16 {
			return fmt.Errorf("--shards %d: at most 65536", *shards)
		}
		cfg.Shards = uint32(*shards)
		if cfg.Gateway.SessionRate < 0 {
			return fmt.Errorf("--session-rate %g: at least 0 (0: no bound)", cfg.Gateway.SessionRate)
		}
		if cfg.Gateway.SessionBurst < 1 {
			return fmt.Errorf("--session-burst %d: at least 1", cfg.Gateway.SessionBurst)
		}
		if cfg.MaxConnections < 0 {
			return fmt.Errorf("--max-connections %d: at least 1 (0: from the open-files limit)", cfg.MaxConnections)
		}
		if cfg.HTTPIdleTimeout <= 0 {
			return fmt.Errorf("--http-idle-timeout %v: must be positive", cfg.HTTPIdleTimeout)
		}
		if cfg.Replicas < 1 {
			return fmt.Errorf("--replicas %d: at least 1", cfg.Replicas)
		}
		for _, r := range splitList(*roles) {
			cfg.Roles = append(cfg.Roles, cluster.Role(r))
		}
		cfg.Detection = cluster.Detection(*detection)
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		switch *logFormat {
		case "text", "json":
		default:
			return fmt.Errorf("--log-format must be text or json")
		}
		cfg.Logger = newLogger(fs.Output(), *logFormat, lvl)
		return nil
	}
}

func newLogger(w io.Writer, format string, lvl slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs, "switchboard serve [flags]")
	cfg, finish := serveFlags(fs)
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if err := finish(); err != nil {
		return err
	}
	startHeapFloor(cfg.HeapFloor)
	n, err := NewNode(*cfg)
	if err != nil {
		return err
	}
	roles := make([]string, len(cfg.Roles))
	for i, r := range cfg.Roles {
		roles[i] = string(r)
	}
	// Scripts and tests read these lines to find the node.
	scheme := "ws"
	if n.TLS() {
		scheme = "wss"
	}
	fmt.Fprintf(stdout, "switchboard %s listening on %s (%s://%s/v1/ws)\n", n.cl.Name(), n.Addr(), scheme, n.Addr())
	if n.AdminAddr() != n.Addr() {
		web := "http"
		if n.TLS() {
			web = "https"
		}
		fmt.Fprintf(stdout, "switchboard %s operator endpoints on %s (%s://%s)\n", n.cl.Name(), n.AdminAddr(), web, n.AdminAddr())
	}
	fmt.Fprintf(stdout, "switchboard %s gossip on %s, roles %s\n", n.cl.Name(), n.cl.GossipAddress(), strings.Join(roles, ","))
	return n.Run(ctx)
}

func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
