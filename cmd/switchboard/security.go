package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/cluster/security"
	"github.com/switchboard-chat/switchboard/gateway"
)

// SecurityConfig secures a node's ports (see serve's flags).
type SecurityConfig struct {
	// ClusterKey is the gossip keys, base64, comma-separated, the primary
	// first; ClusterKeyFile, instead, a file of them re-read every second.
	ClusterKey     string
	ClusterKeyFile string
	// ClusterTLSCA, ClusterTLSCert and ClusterTLSKey secure the
	// node-to-node transport with mutual TLS (all three or none).
	ClusterTLSCA, ClusterTLSCert, ClusterTLSKey string
	// ClusterTLSCRL and TLSClientCRL are revocation lists of the
	// certificates ClusterTLSCA and TLSClientCA signed.
	ClusterTLSCRL, TLSClientCRL string
	// TLSCert and TLSKey serve --listen over TLS; TLSClientCA makes its
	// clients present a certificate that chains to it.
	TLSCert, TLSKey, TLSClientCA string
	// TLSPeerCA is a CA bundle other nodes' --listen certificates may
	// chain to, besides the system's roots and ClusterTLSCA (see
	// security.PeerTLS): trusted when a request is forwarded to them.
	TLSPeerCA string
	// Insecure lets the cluster ports run off loopback without the key and
	// the node certificates.
	Insecure bool
	// AllowedOrigins are browser origins allowed besides the request's own.
	AllowedOrigins []string
}

// certReloadInterval is how often certificate files are checked for
// change.
const certReloadInterval = time.Second

// nodeSecurity is what a node made of its SecurityConfig.
type nodeSecurity struct {
	keys    [][]byte
	cluster *security.Identity // nil: plaintext transport
	client  *security.Identity // nil: plaintext --listen
	peerCA  *security.Identity // --tls-peer-ca (nil: none)
	// peers is what the node trusts and presents when it forwards a
	// request to another node's --listen.
	peers *security.PeerTLS
}

// setupSecurity checks the security flags, loads the keys and
// certificates, and refuses cluster ports off loopback without them
// unless --insecure. gossip and remote are the cluster's bind addresses.
func setupSecurity(cfg SecurityConfig, gossip, remote, listen string, log *slog.Logger) (*nodeSecurity, error) {
	s := &nodeSecurity{}
	var err error
	if cfg.ClusterKey != "" && cfg.ClusterKeyFile != "" {
		return nil, errors.New("use --cluster-key or --cluster-key-file, not both")
	}
	if cfg.ClusterKey != "" {
		if s.keys, err = security.ParseKeys(cfg.ClusterKey); err != nil {
			return nil, fmt.Errorf("--cluster-key: %w", err)
		}
	}
	switch n := countSet(cfg.ClusterTLSCA, cfg.ClusterTLSCert, cfg.ClusterTLSKey); n {
	case 0:
	case 3:
		if s.cluster, err = security.LoadIdentity(security.IdentityConfig{CertFile: cfg.ClusterTLSCert, KeyFile: cfg.ClusterTLSKey,
			CAFile: cfg.ClusterTLSCA, CRLFile: cfg.ClusterTLSCRL, Node: true, Name: "cluster TLS", Logger: log}); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("--cluster-tls-ca, --cluster-tls-cert and --cluster-tls-key go together")
	}
	if cfg.ClusterTLSCRL != "" && s.cluster == nil {
		return nil, errors.New("--cluster-tls-crl needs --cluster-tls-ca, --cluster-tls-cert and --cluster-tls-key")
	}
	for _, o := range cfg.AllowedOrigins {
		if err := gateway.ValidOrigin(o); err != nil {
			return nil, fmt.Errorf("--allowed-origins: %w", err)
		}
	}
	switch {
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		return nil, errors.New("--tls-cert and --tls-key go together")
	case cfg.TLSClientCA != "" && cfg.TLSCert == "":
		return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	case cfg.TLSClientCRL != "" && cfg.TLSClientCA == "":
		return nil, errors.New("--tls-client-crl needs --tls-client-ca")
	case cfg.TLSCert != "":
		if s.client, err = security.LoadIdentity(security.IdentityConfig{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey,
			CAFile: cfg.TLSClientCA, CRLFile: cfg.TLSClientCRL, Name: "client TLS", Logger: log}); err != nil {
			return nil, err
		}
	}

	if cfg.TLSPeerCA != "" {
		if s.peerCA, err = security.LoadCAs(cfg.TLSPeerCA, "peer CA", log); err != nil {
			return nil, fmt.Errorf("--tls-peer-ca: %w", err)
		}
	}
	s.peers = security.NewPeerTLS(s.cluster, s.client, s.peerCA, log)

	var missing []string
	if len(s.keys) == 0 && cfg.ClusterKeyFile == "" {
		missing = append(missing, "--cluster-key (or --cluster-key-file)")
	}
	if s.cluster == nil {
		missing = append(missing, "--cluster-tls-ca, --cluster-tls-cert and --cluster-tls-key")
	}
	exposed := !security.OnLoopback(gossip) || !security.OnLoopback(remote)
	switch {
	case exposed && len(missing) > 0 && !cfg.Insecure:
		return nil, fmt.Errorf("the cluster ports are not on loopback (gossip %s, transport %s) and are not secured: set %s "+
			"(switchboard certs makes them; see docs/operations.md, Securing a cluster), "+
			"or pass --insecure to run them in the clear, where anyone who reaches them can join the cluster and act as any user",
			gossip, remote, strings.Join(missing, " and "))
	case cfg.Insecure && len(missing) > 0:
		log.Error("INSECURE CLUSTER (--insecure): anyone who reaches this node's gossip or transport port can join the cluster, "+
			"read what nodes say to each other, and act on any channel as any user, admins included. Never run this on a network you do not control.",
			"missing", strings.Join(missing, "; "), "gossip", gossip, "transport", remote)
	case cfg.Insecure:
		log.Warn("--insecure has no effect: the cluster key and node certificates are set")
	}
	if s.client == nil && !security.OnLoopback(listen) {
		log.Warn("clients connect to --listen in the clear (ws://, http://): terminate TLS in front of this node or set --tls-cert and --tls-key", "listen", listen)
	}
	return s, nil
}

func countSet(vs ...string) int {
	n := 0
	for _, v := range vs {
		if v != "" {
			n++
		}
	}
	return n
}

// watch re-reads the certificate files until stop closes.
func (s *nodeSecurity) watch(stop <-chan struct{}, run func(func())) {
	for _, id := range []*security.Identity{s.cluster, s.client, s.peerCA} {
		if id != nil {
			run(func() { id.Watch(stop, certReloadInterval) })
		}
	}
}
