// Package cluster forms the cluster and routes messages in it: memberlist
// gossip for membership, protoactor-go remote for transport, rendezvous
// placement of virtual actors on host nodes, and request tracking that
// fails a call as soon as its target node is known to be gone.
package cluster

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/hashicorp/memberlist"
	"github.com/switchboard-chat/switchboard/cluster/security"
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/cluster/workers"
)

// Detection is a failure-detection preset.
type Detection string

// Presets. DetectionFast suits loopback and tests: a SIGKILLed node is
// declared dead in well under a second (probe 200 ms, timeout 100 ms,
// suspicion multiplier 2, gossip 50 ms). DetectionLAN is memberlist's
// conservative LAN default (5–6 s), which tolerates GC pauses and busy
// machines without false suspicion.
const (
	DetectionFast Detection = "fast"
	DetectionLAN  Detection = "lan"
)

// Config configures one node's cluster layer. DefaultConfig is a
// production node's; zero fields take its values, except the addresses
// (which take free loopback ports) and ClusterName (no name).
type Config struct {
	// Name is the node's unique name (also its placement identity: a node
	// that restarts under the same name keeps its scopes).
	Name  string
	Roles []Role
	// RemoteAddr is where protoactor remote listens (host:port, port 0
	// picks one; empty: GossipAddr's host, port 0). Its host must be
	// reachable by the other nodes.
	RemoteAddr string
	// GossipAddr is where memberlist listens (host:port, port 0 picks
	// one; empty: 127.0.0.1:0).
	GossipAddr string
	// GossipTransport and ActorTransport, when set, carry gossip and actor
	// messages instead of sockets at GossipAddr and RemoteAddr (which are
	// then unused): a MemNetwork's (MemNetwork.Attach), for tests that run
	// several nodes in one process.
	GossipTransport memberlist.NodeAwareTransport
	ActorTransport  ActorTransport
	// Partition, when set, is in front of this node's dials to others
	// and of its gossip (fault injection, partition.go); it takes effect
	// on the socket transports only.
	Partition *Partition
	// HTTPAddr is the node's client-facing address, gossiped for tooling
	// and for requests other nodes forward to it (Meta.HTTP); HTTPTLS says
	// it (and AdminAddr) serve TLS, and AdminAddr is its separate operator
	// address, if any (Meta.HTTPTLS, Meta.Admin).
	HTTPAddr  string
	HTTPTLS   bool
	AdminAddr string
	// Join are gossip addresses of existing members (seeds). They, and
	// the nodes the saved registry knows, are joined at start and retried
	// in the background while they do not answer (see rejoin.go).
	Join []string
	// ClusterName is memberlist's Label: nodes with different names never
	// talk, so two clusters cannot merge by mistake.
	ClusterName string
	Detection   Detection
	// Keys encrypt and authenticate gossip (memberlist's keyring: AES-GCM
	// with keys of 16, 24 or 32 bytes): the first encrypts what this node
	// sends, all are tried on what it receives. A node without one of the
	// keys, or without keys at all, cannot join. Empty: plaintext gossip.
	Keys [][]byte
	// KeyFile, instead of Keys, is a file of keys (security.ParseKeys)
	// re-read every second: a change of keys takes effect without a
	// restart, so keys rotate without dropping a member.
	KeyFile string
	// TLS, when set, secures the actor transport with mutual TLS: this
	// node presents TLS's certificate and accepts only peers whose node
	// certificate chains to its CA, as the files are at each handshake.
	// Nil: plaintext, and anyone reaching RemoteAddr can send to actors.
	TLS *security.Identity
	// RequestTimeout bounds every request.
	RequestTimeout time.Duration
	// MaxPending bounds outstanding requests from this node.
	MaxPending int
	// InboxEventBytes bounds the channel events waiting in this node's
	// inbox for fan-out to its sessions; past it event batches are shed
	// and their channels replayed (see eventBound).
	InboxEventBytes int64
	// Registry keeps the known-hosts registry on disk (nil: memory only).
	Registry RegistryStore
	// Workers runs the inbox's mailbox on kept goroutines (nil: a new
	// goroutine per run, protoactor's default, whose stack grows afresh
	// each time). The caller closes it after Close.
	Workers *workers.Pool
	// Cluster, Shards and Store are the node's cluster identity when it
	// knows it at start (a restart); else SetIdentity gives them later.
	Cluster string
	Shards  uint32
	Store   uint64
	Logger  *slog.Logger
	// claims is fault injection for tests (claims_testhooks.go).
	claims claimSet
}

// DefaultConfig is a production node's cluster layer. The node's flags
// take their defaults from it.
func DefaultConfig() Config {
	return Config{
		// Every node is a complete server: sessions and actors.
		Roles: []Role{RoleGateway, RoleHost},
		// memberlist's port, on loopback until the operator says where.
		GossipAddr: "127.0.0.1:7946",
		// Nodes of different deployments on one network never merge.
		ClusterName: "switchboard",
		// Conservative: GC pauses and busy machines are not deaths.
		Detection: DetectionLAN,
		// A request a node has not answered in 10 s is retried by the
		// client; the gateway's own timeout is the same.
		RequestTimeout: 10 * time.Second,
		// 65,536 requests in flight from one node: far above what its
		// sessions' in-flight limits add up to in practice.
		MaxPending: 65536,
		// 64 MiB of events waiting for fan-out, then shed and replayed.
		InboxEventBytes: 64 << 20,
	}
}

func (c *Config) withDefaults() {
	d := DefaultConfig()
	if c.GossipAddr == "" {
		c.GossipAddr = "127.0.0.1:0"
	}
	if c.RemoteAddr == "" {
		host, _, err := net.SplitHostPort(c.GossipAddr)
		if err != nil {
			host = "127.0.0.1" // New reports the gossip address itself
		}
		c.RemoteAddr = net.JoinHostPort(host, "0")
	}
	if c.Detection == "" {
		c.Detection = d.Detection
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.MaxPending <= 0 {
		c.MaxPending = d.MaxPending
	}
	if c.InboxEventBytes <= 0 {
		c.InboxEventBytes = d.InboxEventBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(c.Roles) == 0 {
		c.Roles = d.Roles
	}
}

// Cluster is one node's membership and transport.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	system *actor.ActorSystem
	remote ActorTransport
	ml     *memberlist.Memberlist
	addr   string // this node's remote address

	reg   *registry
	mu    sync.Mutex // guards live, meta, listeners and view swaps
	live  map[string]liveState
	acked map[string]time.Time // last successful probe of each member
	view  atomic.Pointer[View]
	// probeInterval is memberlist's; suspicion is judged against it.
	probeInterval time.Duration
	meta          Meta
	listeners     []func(old, cur Member)

	router      *router
	links       links // see links.go
	shards      shardTable
	shardSource func() []shard.Status // guarded by mu
	kick        chan struct{}         // wakes announceLoop
	inbox       *actor.PID
	inboxDepth  inboxDepth
	events      eventBound
	handler     atomic.Pointer[Handler]

	// Rejoining (see rejoin.go): retry is the backoff of each address,
	// touched by New and then by rejoinLoop only.
	rejoinMin, rejoinMax time.Duration
	retry                map[string]*retryState
	joined               atomic.Bool
	joinOK, joinFailed   atomic.Uint64

	// Refused strangers at the gossip and transport ports (security.go).
	gossipRefused, transportRefused *security.Refusals
	keyring                         *memberlist.Keyring
	keyFileRead                     []byte // the key file as New read it

	// raft carries raft batches to and from other nodes on the gRPC
	// transport (nil on another transport).
	raft *raftStreams

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

// New starts the actor system, the remote transport and memberlist, and
// joins the seeds and the nodes its registry knows. The node is a member
// (a cluster of one when nobody answered) when New returns; whoever did
// not answer is retried in the background until Close.
func New(cfg Config) (c *Cluster, err error) {
	cfg.withDefaults()
	c = &Cluster{cfg: cfg, log: cfg.Logger.With("component", "cluster"), stop: make(chan struct{}), live: make(map[string]liveState),
		acked: make(map[string]time.Time), retry: make(map[string]*retryState), kick: make(chan struct{}, 1)}
	c.shards.shards = make(map[uint32]ShardInfo)
	c.events.limit = cfg.InboxEventBytes
	c.gossipRefused = security.NewRefusals(c.log, "refused gossip from a node that is not of this cluster")
	c.transportRefused = security.NewRefusals(c.log, "refused a connection to the node-to-node transport at the TLS handshake")
	keys, err := c.initialKeys()
	if err != nil {
		return nil, err
	}
	c.rejoinMin, c.rejoinMax = rejoinIntervals(cfg.Detection)
	if c.reg, err = newRegistry(cfg.Registry); err != nil {
		return nil, fmt.Errorf("load registry: %w", err)
	}
	c.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return cfg.Logger.With("component", "actor")
	}), actor.WithDeadLetterThrottleCount(1), actor.WithDeadLetterThrottleInterval(time.Second))

	c.remote = cfg.ActorTransport
	if c.remote == nil {
		host, portStr, err := net.SplitHostPort(cfg.RemoteAddr)
		if err != nil {
			return nil, fmt.Errorf("remote address %q: %w", cfg.RemoteAddr, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("remote address %q: %w", cfg.RemoteAddr, err)
		}
		creds := c.transportCredentials()
		dial := dialOptions(creds, cfg.Partition)
		c.raft = newRaftStreams(dial, c.log, raftNet{c}.remoteOf) // raftstream.go
		c.raft.legacy = raftNet{c}.sendEnvelope
		c.remote = &grpcTransport{host: host, port: port, creds: creds, dial: dial, log: c.log, raft: c.raft} // transport.go
	}
	if c.addr, err = c.remote.Start(c.system); err != nil {
		c.system.Shutdown()
		return nil, err
	}
	c.router = newRouter(c)
	c.inbox, err = c.system.Root.SpawnNamed(c.inboxProps(), inboxName)
	if err != nil {
		c.closeTransport()
		return nil, fmt.Errorf("spawn inbox: %w", err)
	}
	c.meta = Meta{Roles: cfg.Roles, Remote: c.addr, HTTP: cfg.HTTPAddr, HTTPTLS: cfg.HTTPTLS, Admin: cfg.AdminAddr, Version: ProtocolVersion,
		Incarnation: time.Now().UnixNano(), Cluster: cfg.Cluster, Shards: cfg.Shards, Store: cfg.Store}
	// The flags and identity a node gossips later (draining, a full
	// disk, left, its cluster's) must fit too.
	longest := c.meta
	longest.Draining, longest.DiskFull, longest.DiskSlow, longest.Left = true, true, true, true
	longest.Cluster, longest.Shards, longest.Store = strings.Repeat("f", 16), math.MaxUint32, math.MaxUint64
	if b := longest.encode(); len(b) > memberlist.MetaMaxSize {
		c.closeTransport()
		return nil, fmt.Errorf("the node's addresses take %d bytes to gossip, more than memberlist's %d: use shorter host names", len(b), memberlist.MetaMaxSize)
	}
	c.view.Store(newView(nil))
	c.reg.merge(HostRecord{Name: cfg.Name, Incarnation: c.meta.Incarnation, Remote: c.addr, Roles: cfg.Roles})
	c.rebuild()

	if err := c.startMemberlist(keys); err != nil {
		c.closeTransport()
		return nil, err
	}
	c.watchEndpoints()
	if cfg.KeyFile != "" {
		c.wg.Go(c.keyFileLoop)
	}
	c.wg.Add(5)
	go func() { defer c.wg.Done(); c.announceLoop() }()
	go func() { defer c.wg.Done(); c.refreshLoop() }()
	go func() { defer c.wg.Done(); c.rejoinLoop() }()
	go func() { defer c.wg.Done(); c.router.sweepLoop(c.stop) }()
	go func() {
		defer c.wg.Done()
		c.reg.saveLoop(c.stop, func(err error) { c.log.Error("saving the cluster registry", "err", err) })
	}()
	return c, nil
}

func (c *Cluster) startMemberlist(keys [][]byte) error {
	var mc *memberlist.Config
	switch c.cfg.Detection {
	case DetectionFast:
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.SuspicionMult = 2
		mc.GossipInterval = 50 * time.Millisecond
		mc.PushPullInterval = 5 * time.Second
		mc.TCPTimeout = time.Second
	case DetectionLAN:
		mc = memberlist.DefaultLANConfig()
	default:
		return fmt.Errorf("unknown failure detection preset %q (fast or lan)", c.cfg.Detection)
	}
	host, portStr, err := net.SplitHostPort(c.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("gossip address %q: %w", c.cfg.GossipAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("gossip address %q: %w", c.cfg.GossipAddr, err)
	}
	mc.Name = c.cfg.Name
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertiseAddr = host
	mc.AdvertisePort = port
	mc.Logger = log.New(&logWriter{l: c.log, refused: c.gossipRefused}, "", 0)
	switch {
	case c.cfg.GossipTransport != nil:
		mc.Transport = c.cfg.GossipTransport
	case c.cfg.Partition != nil:
		if mc.Transport, err = c.cfg.Partition.gossipTransport(mc); err != nil {
			return err
		}
	}
	mc.Label = c.cfg.ClusterName
	if len(keys) > 0 {
		if c.keyring, err = memberlist.NewKeyring(keys, keys[0]); err != nil {
			return fmt.Errorf("cluster keys: %w", err)
		}
		mc.Keyring = c.keyring
	}
	// A node restarted under its name on a new port may rejoin at once.
	mc.DeadNodeReclaimTime = time.Second
	mc.Delegate = &delegate{c: c}
	mc.Events = &events{c: c}
	mc.Ping = &pings{c: c}
	c.probeInterval = mc.ProbeInterval
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("start memberlist: %w", err)
	}
	c.ml = ml
	c.reg.merge(HostRecord{Name: c.cfg.Name, Incarnation: c.meta.Incarnation, Remote: c.addr, Gossip: c.GossipAddress(), Roles: c.cfg.Roles})
	c.rebuild()
	c.joinAtStart()
	return nil
}

// Name returns this node's name.
func (c *Cluster) Name() string { return c.cfg.Name }

// RequestTimeout returns the longest a request may wait for its reply:
// longer timeouts asked of Request and RequestNode are cut to it.
func (c *Cluster) RequestTimeout() time.Duration { return c.cfg.RequestTimeout }

// Address returns this node's remote address.
func (c *Cluster) Address() string { return c.addr }

// GossipAddress returns where memberlist listens.
func (c *Cluster) GossipAddress() string {
	n := c.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// System returns the actor system.
func (c *Cluster) System() *actor.ActorSystem { return c.system }

// View returns the current membership snapshot.
func (c *Cluster) View() *View { return c.view.Load() }

// HasRole reports whether this node has role r.
func (c *Cluster) HasRole(r Role) bool { return slices.Contains(c.cfg.Roles, r) }

func (c *Cluster) kickAnnounce() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// refreshLoop re-reads memberlist's member list: memberlist reports joins
// and leaves as events but suspicion only in its list. Only the names of
// listed nodes are read (the rest of a listed Node changes under
// memberlist's lock); their metadata is what events last said.
func (c *Cluster) refreshLoop() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			members := c.ml.Members()
			// Each member is probed about once per len(members) probe
			// intervals; a few rounds without an ack is suspicious.
			quiet := time.Duration(3*len(members)+3) * c.probeInterval
			now := time.Now()
			for _, n := range members {
				state := StateAlive
				c.mu.Lock()
				last, ok := c.acked[n.Name]
				if !ok {
					c.acked[n.Name] = now
				}
				// A snapshot may list a node memberlist has declared dead
				// since: never upgrade dead or left from a snapshot. A node
				// no event announced yet is not one of ours (yet).
				l, known := c.live[n.Name]
				if !known || l.state == StateDead || l.state == StateLeft {
					c.mu.Unlock()
					continue
				}
				c.mu.Unlock()
				if ok && now.Sub(last) > quiet {
					state = StateSuspect
				}
				c.observe(n.Name, l.meta, l.gossip, state)
			}
		}
	}
}

// Leave tells the cluster this node is leaving for good (after a drain),
// waiting up to timeout for the message to spread.
func (c *Cluster) Leave(timeout time.Duration) error {
	c.reg.merge(HostRecord{Name: c.cfg.Name, Incarnation: c.meta.Incarnation, Left: true, Remote: c.addr, Gossip: c.GossipAddress(), Roles: c.cfg.Roles})
	c.mu.Lock()
	c.meta.Left = true
	c.mu.Unlock()
	// Tell every alive member over TCP, by a push/pull of the registry
	// (which now says this node left): gossip alone may deliver
	// memberlist's leave before the metadata that tells it from a death.
	var peers []string
	for _, m := range c.View().Members() {
		if m.Name != c.cfg.Name && m.State == StateAlive && m.Gossip != "" {
			peers = append(peers, m.Gossip)
		}
	}
	if len(peers) > 0 {
		if _, err := c.ml.Join(peers); err != nil {
			c.log.Warn("telling members of the departure", "err", err)
		}
	}
	if err := c.ml.UpdateNode(timeout); err != nil {
		c.log.Warn("announcing departure", "err", err)
	}
	return c.ml.Leave(timeout)
}

// Close stops memberlist, the transport and the actor system. Outstanding
// requests fail with unavailable. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.stopOnce.Do(func() {
		close(c.stop)
		c.wg.Wait()
		c.router.failAll("node shutting down")
		if c.ml != nil {
			_ = c.ml.Shutdown()
		}
		c.closeTransport()
	})
	return nil
}

// dropRaftStream closes the raft stream to a node that died, left or
// restarted (the next batch for it dials afresh).
func (c *Cluster) dropRaftStream(name string) {
	if c.raft != nil {
		c.raft.drop(name)
	}
}

func (c *Cluster) closeTransport() {
	if c.raft != nil {
		c.raft.close()
	}
	c.remote.Shutdown()
	c.system.Shutdown()
}
