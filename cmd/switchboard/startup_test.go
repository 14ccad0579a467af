package main

import (
	"net"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestNewNodeFailsCleanly: a bad configuration is an error, never a panic,
// and what NewNode had opened is closed (the data directory can be reused).
func TestNewNodeFailsCleanly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	base := Config{DataDir: dir, ClusterBind: "127.0.0.1:0", Listen: "127.0.0.1:0", Logger: testLogger(), Limits: protocol.DefaultLimits(), NodeName: "n", Network: cluster.NewMemNetwork()}
	for name, mutate := range map[string]func(*Config){
		"listen in use": func(c *Config) { c.Listen = busy.Addr().String() },
		"both keys":     func(c *Config) { c.AuthSecret, c.AuthPublicKey = "s", "k.pem" },
		"bad key file":  func(c *Config) { c.AuthPublicKey = dir + "/missing.pem" },
		"unknown role":  func(c *Config) { c.Roles = []cluster.Role{"janitor"} },
	} {
		cfg := base
		mutate(&cfg)
		n, err := NewNode(cfg)
		if err == nil || n != nil {
			t.Fatalf("%s: node %v, err %v", name, n, err)
		}
	}
	// The store was closed: a node opens on the same directory.
	n, err := NewNode(base)
	if err != nil {
		t.Fatalf("after failed starts: %v", err)
	}
	if !strings.HasPrefix(n.Addr(), "127.0.0.1:") {
		t.Fatalf("addr %s", n.Addr())
	}
	n.Close()
}
