package peerhttp

import (
	"errors"
	"testing"

	"github.com/switchboard-chat/switchboard/cluster"
)

// TestURL: the scheme and address come from what the member gossips: its
// --listen over https:// when it serves TLS, http:// when it does not or
// does not say (a node from before http_tls was gossiped), and its admin
// address for operator requests when it has one; a member not alive, or
// without an address, cannot be reached.
func TestURL(t *testing.T) {
	alive := func(meta cluster.Meta) cluster.Member {
		return cluster.Member{Name: "n2", State: cluster.StateAlive, Meta: meta}
	}
	const path = "/v1/cluster/metrics?node=n2"
	for name, c := range map[string]struct {
		m      cluster.Member
		target Target
		want   string
	}{
		"plain":                       {alive(cluster.Meta{HTTP: "10.0.0.2:8080"}), Public, "http://10.0.0.2:8080" + path},
		"tls":                         {alive(cluster.Meta{HTTP: "n2.example.com:8443", HTTPTLS: true}), Public, "https://n2.example.com:8443" + path},
		"operator, no admin address":  {alive(cluster.Meta{HTTP: "[fd00::2]:8443", HTTPTLS: true}), Operator, "https://[fd00::2]:8443" + path},
		"operator, an admin address":  {alive(cluster.Meta{HTTP: "10.0.0.2:8443", HTTPTLS: true, Admin: "10.0.0.2:9090"}), Operator, "https://10.0.0.2:9090" + path},
		"operator, plain admin":       {alive(cluster.Meta{HTTP: "10.0.0.2:8080", Admin: "10.0.0.2:9090"}), Operator, "http://10.0.0.2:9090" + path},
		"public, an admin address":    {alive(cluster.Meta{HTTP: "10.0.0.2:8443", HTTPTLS: true, Admin: "10.0.0.2:9090"}), Public, "https://10.0.0.2:8443" + path},
		"operator, admin, no address": {alive(cluster.Meta{Admin: "10.0.0.2:9090"}), Operator, "http://10.0.0.2:9090" + path},
	} {
		if got, err := URL(c.m, c.target, path); err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, c.want)
		}
	}
	for name, m := range map[string]cluster.Member{
		"dead":       {Name: "n2", State: cluster.StateDead, Meta: cluster.Meta{HTTP: "10.0.0.2:8080"}},
		"unknown":    {},
		"no address": alive(cluster.Meta{}),
	} {
		if _, err := URL(m, Public, path); !errors.Is(err, ErrUnreachable) {
			t.Errorf("%s: %v, want ErrUnreachable", name, err)
		}
	}
}
