//go:build !testhooks

package main

import (
	"flag"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/cluster"
)

// testHooks is empty in production builds (see testhooks.go).
type testHooks struct{}

func testHookFlags(*flag.FlagSet, *testHooks) func() { return func() {} }

func (testHooks) apply(*cluster.Config) {}

func (testHooks) webhook(*WebhookConfig) error { return nil }

func (testHooks) replication(r actors.Replication, _ *cluster.Cluster) actors.Replication { return r }
