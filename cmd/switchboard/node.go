package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/actors/webhook"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/peerhttp"
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/cluster/workers"
	"github.com/switchboard-chat/switchboard/gateway"
	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
	"github.com/switchboard-chat/switchboard/web"
)

// Config is one node's configuration (see serve's flags for each field).
type Config struct {
	Listen        string
	DataDir       string
	DevAuth       bool
	AuthSecret    string
	AuthPublicKey string
	// APIKey holds the server API keys, comma-separated (see
	// auth.ParseAPIKeys and operator.go).
	APIKey string
	// AdminListen, when set to an address other than Listen, serves the
	// operator endpoints (/v1/cluster, /metrics, /debug/pprof) there
	// instead of on Listen (port 0 picks a free one).
	AdminListen string
	// MaxConnections bounds the connections Listen holds open at once
	// (0: connectionBudget of the open-files limit).
	MaxConnections int
	// HTTPIdleTimeout closes an HTTP keep-alive connection idle this long
	// between requests (0: 2 minutes).
	HTTPIdleTimeout time.Duration
	NodeName        string
	ClusterBind     string
	RemoteBind      string
	Join            []string
	Roles           []cluster.Role
	ClusterName     string
	Detection       cluster.Detection
	Limits          protocol.Limits
	// InboxBytes bounds the channel events waiting for fan-out (0: 64 MiB).
	InboxBytes int64
	// RequestTimeout bounds every request between nodes and every one a
	// session makes (0: cluster.DefaultConfig's). Tests of very large
	// replies on a loaded machine raise it; no flag sets it.
	RequestTimeout time.Duration
	// Gateway tunes sessions; its Limits and Logger are set from the above.
	Gateway        gateway.Config
	PassivateAfter time.Duration
	// DrainTimeout, when positive, makes Run drain the node (hand its
	// sessions and scopes over) for up to this long before it closes.
	DrainTimeout time.Duration
	Logger       *slog.Logger
	// FS replaces the OS filesystem for the store (tests).
	FS vfs.FS
	// Network, when set, carries the node's gossip and actor traffic
	// instead of sockets at ClusterBind and RemoteBind (tests that run
	// several nodes in one process).
	Network *cluster.MemNetwork
	// Test is fault injection, in builds with the testhooks tag only.
	Test testHooks
	// Shards is the shard count a cluster formed by this node gets (0:
	// DefaultShards); when set, a node of a cluster with another count
	// refuses to start. Replicas is how many replicas each shard has
	// (default 3, fewer while fewer hosts exist). ReplaceDeadAfter is how
	// long a host may stay dead before its replicas are re-created
	// elsewhere (default 5 min).
	Shards           uint32
	Replicas         int
	ReplaceDeadAfter time.Duration
	// Pprof serves Go's profiler at /debug/pprof/ with the operator
	// endpoints.
	Pprof bool
	// FaultInjection serves /v1/cluster/partition with the operator
	// endpoints: cutting the node off from others (the chaos command's
	// partition fault). Never on in production.
	FaultInjection bool
	// TypingTTL is how long a typing.start lasts unrenewed (0: 6 s).
	TypingTTL time.Duration
	// Security secures the cluster's ports and --listen (security.go).
	Security SecurityConfig
	// HeapFloor is the heap goal the garbage collector keeps at least
	// (heapfloor.go; 0: none). serve applies it to the process.
	HeapFloor int64
	// DiskReserve is the free space the store keeps on its disk (see
	// persistence.Options; 0: 64 MiB, negative: none).
	DiskReserve int64
	// DiskSlowWindow is the window over which the disk's speed is judged
	// (diskspeed.go; 0: 5 s).
	DiskSlowWindow time.Duration
	// StorageCloseTimeout bounds how long Close waits for the raft engine
	// to stop and for the store to close, each (0: 10 s): see
	// storageStep.
	StorageCloseTimeout time.Duration
	// Webhook delivers channel events by HTTP (URL unset: none).
	Webhook WebhookConfig
}

// Node is one Switchboard node: its store, cluster membership, actors and
// gateway, served on one HTTP listener.
type Node struct {
	cfg    Config
	log    *slog.Logger
	verify *auth.Verifier
	store  *persistence.Store
	cl     *cluster.Cluster
	host   bool
	// repl is the node's raft engine and its host actor (hosts only), set
	// once the node knows its cluster; hosting is set then.
	repl    atomic.Pointer[replication]
	hosting atomic.Bool
	gw      *gateway.Gateway
	ln      net.Listener
	conns   *gateway.ConnLimit // Listen's connections, under ln
	// workers are the node's kept goroutines: its actors' mailboxes run
	// on them and its gateway's upgrades are read on them.
	workers *workers.Pool
	srv     *http.Server
	apiKeys auth.APIKeys
	// adminLn and adminSrv serve the operator endpoints when AdminListen
	// is a separate address (nil otherwise).
	adminLn  net.Listener
	adminSrv *http.Server
	reg      *prometheus.Registry
	metrics  *metrics
	hooks    *webhooks // nil without --webhook-url
	ready    atomic.Bool
	sec      *nodeSecurity
	// peers forwards requests to other nodes (file downloads, drain and
	// metrics of another node).
	peers *peerhttp.Client
	// partition cuts this node off from others (--fault-injection only;
	// /v1/cluster/partition).
	partition *cluster.Partition
	// stopWatch ends the certificate watchers and gossipDisk, which
	// watchers joins.
	stopWatch chan struct{}
	// diskChanged is poked when the store starts or stops refusing writes,
	// or its disk turns slow or fast (diskSpeed).
	diskChanged chan struct{}
	diskSpeed   *diskSpeed
	watchers    sync.WaitGroup
	closeMu     sync.Mutex
	closed      bool
	// drainReq closes when the operator API asks this node to drain.
	drainReq  chan struct{}
	drainOnce sync.Once
	// fatal carries a failure after start (the cluster's identity does
	// not match this node's, the store failed): Run returns it.
	fatal chan error
	stop  chan struct{}
	bg    sync.WaitGroup
}

// NewNode opens the store, joins the cluster, starts the actors and binds
// the listener. Serve it with Run.
func NewNode(cfg Config) (_ *Node, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Limits == (protocol.Limits{}) {
		cfg.Limits = protocol.DefaultLimits()
	}
	if len(cfg.Roles) == 0 {
		cfg.Roles = []cluster.Role{cluster.RoleGateway, cluster.RoleHost}
	}
	if err := cfg.Test.webhook(&cfg.Webhook); err != nil {
		return nil, err
	}
	if err := cfg.Webhook.check(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, reg: prometheus.NewRegistry(), workers: actors.NewWorkers(), stopWatch: make(chan struct{}), diskChanged: make(chan struct{}, 1), diskSpeed: newDiskSpeed(cfg.DiskSlowWindow), drainReq: make(chan struct{}),
		fatal: make(chan error, 1), stop: make(chan struct{})}
	defer func() {
		if err != nil {
			n.Close() // whatever opened so far (a failed return leaves n set)
		}
	}()
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.metrics = newMetrics(n.reg)

	switch {
	case cfg.AuthSecret != "" && cfg.AuthPublicKey != "":
		return nil, errors.New("use --auth-secret or --auth-public-key, not both")
	case cfg.AuthSecret != "":
		n.verify = auth.NewHS256(cfg.AuthSecret)
	case cfg.AuthPublicKey != "":
		if n.verify, err = auth.NewEdDSA(cfg.AuthPublicKey); err != nil {
			return nil, err
		}
	default:
		n.verify = &auth.Verifier{}
		cfg.DevAuth = true
	}
	n.cfg.DevAuth = cfg.DevAuth
	n.warnDevAuth()
	n.apiKeys = auth.ParseAPIKeys(cfg.APIKey)

	for _, r := range cfg.Roles {
		switch r {
		case cluster.RoleHost:
			n.host = true
		case cluster.RoleGateway:
		default:
			return nil, fmt.Errorf("unknown role %q (gateway, host)", r)
		}
	}
	remote := cfg.RemoteBind
	if remote == "" {
		host, _, err := net.SplitHostPort(cfg.ClusterBind)
		if err != nil {
			return nil, fmt.Errorf("cluster bind %q: %w", cfg.ClusterBind, err)
		}
		remote = net.JoinHostPort(host, "0")
	}
	if n.sec, err = setupSecurity(cfg.Security, cfg.ClusterBind, remote, cfg.Listen, n.log); err != nil {
		return nil, err
	}
	if cfg.NodeName == "" {
		if cfg.NodeName, err = nodeName(cfg); err != nil {
			return nil, err
		}
	}
	if n.host {
		if cfg.FS == nil {
			if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
				return nil, fmt.Errorf("data dir: %w", err)
			}
		}
		n.store, err = persistence.Open(filepath.Join(cfg.DataDir, "store"), persistence.Options{FS: cfg.FS, Logger: n.log,
			DiskReserve: cfg.DiskReserve, OnWritable: n.storeWritable})
		if err != nil {
			return nil, err
		}
		n.metrics.watchStore(n.store, n.diskSpeed)
	}
	// No TCP keep-alive on the connections it accepts: a session is kept
	// alive by the gateway's WebSocket pings (a silent client is cut
	// after PingTimeout), an idle HTTP connection by the server's idle
	// timeout; the kernel's probes would add nothing but the three
	// setsockopt calls that turn them on, for every connection.
	noKeepAlive := net.ListenConfig{KeepAlive: -1}
	if n.ln, err = noKeepAlive.Listen(context.Background(), "tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	n.conns = n.limitConnections()
	n.ln = n.conns
	n.metrics.watchConnections(n.conns)
	if separateAdmin(cfg.Listen, cfg.AdminListen) {
		if n.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return nil, fmt.Errorf("admin listen: %w", err)
		}
	}
	n.warnOperator()
	var peerDial func(ctx context.Context, network, addr string) (net.Conn, error)
	if cfg.FaultInjection {
		n.partition = cluster.NewPartition()
		peerDial = n.partition.DialContext
		n.metrics.watchFaults(n.partition, n.store)
		n.log.Warn("FAULT INJECTION ON: an operator key may cut this node off from others, slow its links, or stall or slow its disk (/v1/cluster/partition, /v1/cluster/lag, /v1/cluster/disk-stall, /v1/cluster/disk-slow); never run production nodes with --fault-injection")
	}
	n.peers = peerhttp.New(n.sec.peers, peerDial)
	ccfg := cluster.Config{
		Name:            cfg.NodeName,
		Roles:           cfg.Roles,
		RemoteAddr:      remote,
		GossipAddr:      cfg.ClusterBind,
		HTTPAddr:        advertised(cfg.Listen, n.ln.Addr(), remote),
		HTTPTLS:         n.sec.client != nil,
		Join:            cfg.Join,
		ClusterName:     cfg.ClusterName,
		Detection:       cfg.Detection,
		Keys:            n.sec.keys,
		KeyFile:         cfg.Security.ClusterKeyFile,
		TLS:             n.sec.cluster,
		Registry:        registryStore(n.store),
		Workers:         n.workers,
		InboxEventBytes: cfg.InboxBytes,
		RequestTimeout:  cfg.RequestTimeout,
		Logger:          n.log,
	}
	if n.adminLn != nil {
		ccfg.AdminAddr = advertised(cfg.AdminListen, n.adminLn.Addr(), remote)
	}
	ccfg.Partition = n.partition
	cfg.Test.apply(&ccfg)
	if cfg.Network != nil {
		cfg.Network.Attach(&ccfg)
	}
	if n.cl, err = cluster.New(ccfg); err != nil {
		return nil, err
	}
	n.metrics.watchCluster(n.cl)
	if n.store != nil {
		n.watchers.Go(n.gossipDisk)
	}
	if n.host && cfg.Webhook.URL != "" { // webhooks.go
		n.hooks = newWebhooks(cfg.Webhook, n.cl, n.metrics, webhook.Config{Logger: n.log})
		n.hooks.start(n.store, n.cl, func(err error) { n.log.Error("webhook backlog scan", "err", err) })
	}
	if err := n.startIdentity(); err != nil {
		return nil, err
	}
	if cl, _ := n.cl.Identity(); cl == "" {
		n.bg.Go(n.watchIdentity)
	}
	mux := http.NewServeMux()
	if n.cl.HasRole(cluster.RoleGateway) {
		gcfg := cfg.Gateway
		gcfg.Limits = cfg.Limits
		if cfg.RequestTimeout > 0 {
			gcfg.RequestTimeout = cfg.RequestTimeout
		}
		gcfg.Logger = n.log
		gcfg.DevAuth = cfg.DevAuth
		gcfg.APIKeys = n.apiKeys
		if cfg.AuthSecret != "" {
			gcfg.TokenSigner = auth.NewSigner(cfg.AuthSecret)
		}
		gcfg.AllowedOrigins = cfg.Security.AllowedOrigins
		gcfg.Peers = n.peers
		if gcfg.Files.Store, err = fileStore(cfg); err != nil {
			return nil, err
		}
		gcfg.Files.Admit = n.admitFile
		if gcfg.Metrics == nil { // tests may install their own hooks
			gcfg.Metrics = n.metrics.gatewayHooks()
		}
		n.gw = gateway.New(gcfg, n.cl, n.verify)
		n.metrics.watchGateway(n.gw)
		mux.Handle("GET /v1/ws", n.gw)
		n.gw.RegisterAPI(mux) // the HTTP API and the files

	}
	n.healthRoutes(mux)
	if n.adminLn != nil {
		admin := http.NewServeMux()
		n.healthRoutes(admin)
		n.operatorRoutes(admin, true)
		n.adminSrv = n.httpServer(admin)
		if n.sec.client != nil {
			// The operator endpoints carry the API key and the cluster's
			// state: TLS with --listen's certificate, as --listen.
			n.adminSrv.TLSConfig = n.sec.client.ServerConfig("h2", "http/1.1")
		}
	} else {
		n.operatorRoutes(mux, false)
	}
	// The chat app at /, the operator console at /console, their assets.
	app := web.Handler()
	for _, p := range []string{"GET /{$}", "GET /console", "GET /assets/"} {
		mux.Handle(p, app)
	}
	n.srv = n.httpServer(mux)
	// At --max-connections, the connection idle longest between requests
	// makes room for a new one.
	n.srv.ConnState = n.conns.HTTPState
	if n.sec.client != nil {
		// HTTP/2 for the HTTP API; WebSocket upgrades ask for (and get)
		// HTTP/1.1.
		n.srv.TLSConfig = n.sec.client.ServerConfig("h2", "http/1.1")
	} else if n.gw != nil {
		// Plaintext: WebSocket upgrades are served without net/http's
		// per-connection work; everything else reaches n.srv as before.
		// Over TLS they take net/http's path (the handshake, client
		// certificates and ALPN stay with crypto/tls and net/http).
		n.ln = gateway.UpgradeListener(n.ln, "/v1/ws", n.gw, headerTimeout, n.workers)
	}
	n.metrics.watchTLS(n.sec)
	n.sec.watch(n.stopWatch, n.watchers.Go)
	n.ready.Store(true)
	return n, nil
}

// warnDevAuth says at start-up that development auth is on. With an auth
// key as well (--dev-auth) it says so at ERROR, which --log-level cannot
// hide: the key's tokens are then no protection at all.
func (n *Node) warnDevAuth() {
	switch {
	case !n.cfg.DevAuth:
	case n.verify.Dev():
		n.log.Warn("DEVELOPMENT AUTH: no auth key is set, so any client may connect as any user with connect {user_id}. Set --auth-secret or --auth-public-key in production.")
	default:
		n.log.Error("DEVELOPMENT AUTH IS ON ALONGSIDE AN AUTH KEY: --dev-auth lets any client connect as any user with connect {user_id} (and upload files with Authorization: Dev <user>), bypassing the tokens the key checks. Never expose this node; drop --dev-auth in production.")
	}
}

// nodeName returns the name stored in the data directory, making one up
// (and storing it) on first start, so a restarted node keeps its identity.
func nodeName(cfg Config) (string, error) {
	if cfg.FS != nil {
		return "node-" + randomSuffix(), nil
	}
	p := filepath.Join(cfg.DataDir, "NODE")
	if b, err := os.ReadFile(p); err == nil {
		if name := strings.TrimSpace(string(b)); name != "" {
			return name, nil
		}
	}
	name := "node-" + randomSuffix()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	if err := os.WriteFile(p, []byte(name+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("store node name: %w", err)
	}
	return name, nil
}

// hostDeps are the host actor's dependencies on engine.
func (n *Node) hostDeps(engine *shard.Engine) actors.Deps {
	acfg := actors.DefaultConfig()
	acfg.Channel.Limits, acfg.User.Limits = n.cfg.Limits, n.cfg.Limits
	if n.cfg.TypingTTL > 0 {
		acfg.Channel.Rich.TypingTTL = n.cfg.TypingTTL
	}
	acfg.PassivateAfter = n.cfg.PassivateAfter // zero: the default
	deps := actors.Deps{
		Cluster:     n.cl,
		Store:       n.store,
		Replication: n.cfg.Test.replication(engine, n.cl),
		Config:      acfg,
		Logger:      n.log,
		Metrics:     n.metrics.actorHooks(),
		Workers:     n.workers,
	}
	if n.hooks != nil {
		deps.Channel.Webhooks, deps.Webhooks = true, n.hooks.d
	}
	return deps
}

// fail reports a failure after start: Run returns it.
func (n *Node) fail(err error) {
	select {
	case n.fatal <- err:
	default:
	}
}

// storeRegistry keeps the cluster registry in the node's store.
type storeRegistry struct{ s *persistence.Store }

func registryStore(s *persistence.Store) cluster.RegistryStore {
	if s == nil {
		return nil // gateway-only nodes learn the registry from peers
	}
	return storeRegistry{s}
}

func (r storeRegistry) LoadRegistry() ([]byte, error) {
	b, err := r.s.GetNode("registry")
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

func (r storeRegistry) SaveRegistry(b []byte) error { return r.s.PutNode("registry", b) }

// Cluster returns the node's cluster layer.
func (n *Node) Cluster() *cluster.Cluster { return n.cl }
