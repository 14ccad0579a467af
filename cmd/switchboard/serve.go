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

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/protocol"
)

var errUsage = errors.New("usage")

// serveFlags defines serve's flags on fs and returns the config they fill.
func serveFlags(fs *flag.FlagSet) (*Config, func() error) {
	cfg := &Config{}
	lim := protocol.DefaultLimits()
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address for WebSocket (/v1/ws), the HTTP API, /metrics, /healthz and /readyz; port 0 picks a free one")
	fs.StringVar(&cfg.DataDir, "data", "./data", "data directory (the Pebble store and the node's name)")
	fs.BoolVar(&cfg.DevAuth, "dev-auth", false, "accept connect {user_id} without a token (always on when no auth key is set; with a key anyone may connect as anyone, and the node logs an ERROR)")
	fs.StringVar(&cfg.AuthSecret, "auth-secret", "", "HS256 secret that signs session and join tokens")
	fs.StringVar(&cfg.AuthPublicKey, "auth-public-key", "", "PEM file with the Ed25519 public key that verifies EdDSA tokens")
	fs.StringVar(&cfg.APIKey, "api-key", "", "server API keys, comma-separated (several, to rotate one): the HTTP API's admin credential, also required by the operator API (/v1/cluster)")
	fs.StringVar(&cfg.NodeName, "node-name", "", "unique node name; default: the name stored in the data directory, made up on first start")
	fs.StringVar(&cfg.ClusterBind, "cluster-bind", "127.0.0.1:7946", "gossip (memberlist) address; port 0 picks a free one")
	fs.StringVar(&cfg.RemoteBind, "remote-bind", "", "actor transport address; default: the cluster-bind host with a free port")
	join := fs.String("join", "", "comma-separated gossip addresses of existing members; retried in the background until one answers (/readyz answers 503 until then)")
	roles := fs.String("roles", "gateway,host", "what this node does: gateway (client sessions), host (channel and user actors), or both")
	fs.StringVar(&cfg.ClusterName, "cluster-name", "switchboard", "cluster name; nodes only talk to nodes with the same name")
	detection := fs.String("failure-detection", "lan", "failure detection preset: lan (conservative, ~5 s) or fast (loopback/tests, <1 s)")
	fs.IntVar(&lim.MaxFrameBytes, "max-frame-bytes", lim.MaxFrameBytes, "largest WebSocket message a client may send")
	fs.IntVar(&lim.MaxTextLen, "max-text-len", lim.MaxTextLen, "largest message text in bytes")
	fs.IntVar(&lim.MaxInflight, "max-inflight", lim.MaxInflight, "requests a session may have outstanding")
	fs.IntVar(&cfg.Gateway.QueueFrames, "queue-frames", 1024, "frames a session's outbound queue holds before the session is dropped as slow")
	fs.IntVar(&cfg.Gateway.QueueBytes, "queue-bytes", 4<<20, "bytes a session's outbound queue holds before the session is dropped as slow")
	fs.Int64Var(&cfg.InboxBytes, "inbox-bytes", 64<<20, "bytes of channel events the node's inbox holds for fan-out; past it event batches are shed and their channels replayed to the watchers")
	fs.IntVar(&cfg.Gateway.MaxSessions, "max-sessions", 100000, "sessions this node accepts")
	fs.DurationVar(&cfg.Gateway.PresenceInterval, "presence-interval", 10*time.Second, "presence heartbeat: gateways renew their sessions' presence this often, and a session not renewed for three intervals counts as gone (use one value on every node)")
	fs.Int64Var(&lim.MaxFileBytes, "max-file-bytes", lim.MaxFileBytes, "largest file POST /v1/files accepts")
	fileTypes := fs.String("file-types", "*/*", "comma-separated MIME types POST /v1/files accepts, exact (application/pdf) or families (image/*)")
	fs.DurationVar(&cfg.PassivateAfter, "passivate-after", 2*time.Minute, "idle time after which an actor with no watchers leaves memory")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", time.Minute, "on SIGTERM, how long to hand sessions and channels over before exiting (0: exit at once)")
	claim := fs.String("test-claim-channels", "", "FAULT INJECTION for tests, never in production: this node believes it owns these channels whatever placement says")
	fs.BoolVar(&cfg.Pprof, "debug-pprof", false, "serve Go's profiler at /debug/pprof/ on --listen (protect it like --api-key endpoints)")
	// Webhooks (webhooks.go).
	fs.StringVar(&cfg.Webhook.URL, "webhook-url", "", "POST every persisted channel event to this URL, in batches, at least once, in seq order per channel")
	fs.StringVar(&cfg.Webhook.Secret, "webhook-secret", "", "secret of the webhook's HMAC-SHA256 signature (X-Switchboard-Signature: sha256=<hex>); required with --webhook-url")
	hookEvents := fs.String("webhook-events", "", "comma-separated events the webhook delivers (default: every persisted event), e.g. message.new,message.updated")
	hookTiming := fs.String("test-webhook-timing", "", "FAULT INJECTION for tests, never in production: webhook timeout,min-backoff,max-backoff (e.g. 300ms,50ms,200ms)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	return cfg, func() error {
		cfg.Limits = lim
		cfg.Gateway.Files.AllowedTypes = splitList(*fileTypes)
		cfg.Join = splitList(*join)
		cfg.ClaimChannels = splitList(*claim)
		if *hookEvents != "" {
			cfg.Webhook.Events = splitList(*hookEvents)
		}
		if err := parseWebhookTiming(*hookTiming, &cfg.Webhook); err != nil {
			return err
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
	n, err := NewNode(*cfg)
	if err != nil {
		return err
	}
	roles := make([]string, len(cfg.Roles))
	for i, r := range cfg.Roles {
		roles[i] = string(r)
	}
	// Scripts and tests read these lines to find the node.
	fmt.Fprintf(stdout, "switchboard %s listening on %s (ws://%s/v1/ws)\n", n.cl.Name(), n.Addr(), n.Addr())
	fmt.Fprintf(stdout, "switchboard %s gossip on %s, roles %s\n", n.cl.Name(), n.cl.GossipAddress(), strings.Join(roles, ","))
	return n.Run(ctx)
}

func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
