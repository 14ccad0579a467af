//go:build !testhooks

package main

import (
	"flag"
	"testing"
)

// TestProductionBuildHasNoTestHooks: the fault-injection flags exist only
// in builds with the testhooks tag. This package's tests are built
// without it, as the production binary is.
func TestProductionBuildHasNoTestHooks(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	serveFlags(fs)
	for _, name := range []string{"test-claim-channels", "test-webhook-timing"} {
		if f := fs.Lookup(name); f != nil {
			t.Fatalf("the production build has --%s", f.Name)
		}
	}
}
