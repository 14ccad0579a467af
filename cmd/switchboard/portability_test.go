package main

import (
	"testing"
	"time"
)

// A generated history of 100,000 messages across 100 channels is imported
// into an empty node, exported, and compared byte for byte with what was
// imported; importing it again changes nothing (every record skipped).
func TestImportExportRoundTrip(t *testing.T) {
	g := genSpec{channels: 100, messages: 1000, members: 20, users: 300, seed: 17}
	if testing.Short() {
		g.channels, g.messages = 10, 200
	}
	data := g.bytes(t)
	n, _ := apiNode(t)
	start := time.Now()
	res := importNDJSON(t, n.Addr(), data, false)
	if len(res.Errors) > 0 || res.Users != int64(g.users) || res.Channels != int64(g.channels) ||
		res.Members != int64(g.channels*g.members) || res.Messages != int64(g.channels*g.messages) || res.Skipped != 0 {
		t.Fatalf("import: %+v", res)
	}
	t.Logf("import: %v", time.Since(start))
	start = time.Now()
	sameExport(t, n.Addr(), data)
	t.Logf("export: %v", time.Since(start))
	start = time.Now()
	again := importNDJSON(t, n.Addr(), data, false)
	if len(again.Errors) > 0 || again.Skipped != g.records() || again.Users+again.Channels+again.Members+again.Messages != 0 {
		t.Fatalf("second import: %+v (want %d skipped)", again, g.records())
	}
	t.Logf("second import: %v", time.Since(start))
}

// A dry run says what an import would do and writes nothing.
func TestImportDryRun(t *testing.T) {
	t.Parallel()
	g := genSpec{channels: 4, messages: 300, members: 5, users: 20, seed: 3}
	n, _ := apiNode(t)
	dry := importNDJSON(t, n.Addr(), g.bytes(t), true)
	if len(dry.Errors) > 0 || dry.Users != int64(g.users) || dry.Channels != int64(g.channels) ||
		dry.Members != int64(g.channels*g.members) || dry.Messages != int64(g.channels*g.messages) {
		t.Fatalf("dry run: %+v", dry)
	}
	a := keyAPI(t, n, "")
	a.do("GET", "/v1/channels/legacy-0", nil).want(t, 404, "not_found")
	a.do("GET", "/v1/users/u0000", nil).want(t, 404, "not_found")
}
