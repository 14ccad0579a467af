package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// queryAll pages through channels.query and returns the ids in order.
func queryAll(t *testing.T, c *client.Client, args protocol.ChannelsQueryArgs) []string {
	t.Helper()
	var ids []string
	for pages := 0; pages < 100; pages++ {
		var r protocol.ChannelsQueryResult
		if err := c.Call(ctxT(t), protocol.OpChannelsQuery, args, &r); err != nil {
			t.Fatalf("channels.query %+v: %v", args, err)
		}
		for _, ch := range r.Channels {
			ids = append(ids, ch.ID)
		}
		if r.Cursor == "" {
			return ids
		}
		args.Cursor = r.Cursor
	}
	t.Fatal("channels.query: no end of pages")
	return nil
}

// newestFirst orders channel ids as channels.query does: newest created
// first, then by id.
func newestFirst(t *testing.T, c *client.Client, ids []string) []string {
	t.Helper()
	created := map[string]int64{}
	for _, id := range ids {
		var g protocol.ChannelResult
		if err := c.Call(ctxT(t), protocol.OpChannelGet, a(id), &g); err != nil {
			t.Fatal(err)
		}
		created[id] = g.Channel.CreatedAt.UnixMilli()
	}
	out := slices.Clone(ids)
	slices.SortFunc(out, func(x, y string) int {
		if created[x] != created[y] {
			return cmp.Compare(created[y], created[x])
		}
		return strings.Compare(x, y)
	})
	return out
}

// eventually polls channels.query until it returns want: the directory
// learns of changes by notification, shortly after the change.
func eventually(t *testing.T, c *client.Client, args protocol.ChannelsQueryArgs, want []string) {
	t.Helper()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if got = queryAll(t, c, args); slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("channels.query %+v = %v, want %v", args, got, want)
		}
		<-tick.C
	}
}

func TestChannelsQueryEndToEnd(t *testing.T) {
	n := testNode(t)
	alice := dial(t, n, "alice")
	create := func(id, typ string, tags []string, extra map[string]any) {
		t.Helper()
		args := map[string]any{"id": id, "type": typ, "tags": tags}
		for k, v := range extra {
			args[k] = v
		}
		expect(t, alice, protocol.OpChannelCreate, args, "")
	}
	create("c-rock", protocol.TypeCommunity, []string{"music", "rock"}, nil)
	create("c-jazz", protocol.TypeCommunity, []string{"music", "jazz"}, nil)
	create("s-news", protocol.TypeStandard, []string{"news"}, nil)
	create("p-secret", protocol.TypePrivate, []string{"music"}, nil)
	create("p-open", protocol.TypePrivate, []string{"music"}, map[string]any{"public": true})
	create("l-show", protocol.TypeLive, []string{"music"}, nil)
	order := func(ids ...string) []string { return newestFirst(t, alice, ids) }

	bob := dial(t, n, "bob")
	eventually(t, bob, protocol.ChannelsQueryArgs{Tags: []string{"music"}}, order("l-show", "p-open", "c-jazz", "c-rock"))
	eventually(t, bob, protocol.ChannelsQueryArgs{Type: protocol.TypeCommunity}, order("c-jazz", "c-rock"))
	eventually(t, bob, protocol.ChannelsQueryArgs{Tags: []string{"music"}, Type: protocol.TypeCommunity}, order("c-jazz", "c-rock"))
	eventually(t, bob, protocol.ChannelsQueryArgs{Tags: []string{"music", "jazz"}}, []string{"c-jazz"})
	all := order("l-show", "p-open", "s-news", "c-jazz", "c-rock")
	eventually(t, bob, protocol.ChannelsQueryArgs{}, all)
	// Paging one at a time gives the same.
	eventually(t, bob, protocol.ChannelsQueryArgs{Limit: 1}, all)

	// Made private, retagged, deleted: they leave the lists they left.
	expect(t, alice, protocol.OpChannelUpdate, a("p-open", "public", false), "")
	expect(t, alice, protocol.OpChannelUpdate, a("c-rock", "tags", []string{"rock"}), "")
	expect(t, alice, protocol.OpChannelDelete, a("l-show"), "")
	eventually(t, bob, protocol.ChannelsQueryArgs{Tags: []string{"music"}}, []string{"c-jazz"})
	eventually(t, bob, protocol.ChannelsQueryArgs{Tags: []string{"rock"}}, []string{"c-rock"})
	eventually(t, bob, protocol.ChannelsQueryArgs{}, order("s-news", "c-jazz", "c-rock"))

	// Each entry is the channel's current record.
	var r protocol.ChannelsQueryResult
	if err := bob.Call(ctxT(t), protocol.OpChannelsQuery, protocol.ChannelsQueryArgs{Tags: []string{"jazz"}}, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Channels) != 1 || r.Channels[0].ID != "c-jazz" || r.Channels[0].Type != protocol.TypeCommunity || !slices.Equal(r.Channels[0].Tags, []string{"music", "jazz"}) {
		t.Fatalf("record %+v", r.Channels)
	}

	for _, bad := range []map[string]any{
		{"limit": 101}, {"type": "bogus"}, {"cursor": "zz"}, {"tags": []string{""}},
	} {
		expect(t, bob, protocol.OpChannelsQuery, bad, protocol.CodeBadRequest)
	}
	many := make([]string, 17)
	for i := range many {
		many[i] = fmt.Sprint("t", i)
	}
	expect(t, bob, protocol.OpChannelsQuery, map[string]any{"tags": many}, protocol.CodeTooLarge)
}

// TestChannelsQueryAcrossNodes: channels created through one node of a
// two-node cluster (real processes) are found by a query through the
// other, wherever placement puts the channels and the directory shards.
func TestChannelsQueryAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	args := func(name string, join ...string) []string {
		a := []string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(),
			"--node-name", name, "--failure-detection", "fast"}
		if len(join) > 0 {
			a = append(a, "--join", join[0])
		}
		return a
	}
	p1 := startProc(t, args("q1")...)
	p2 := startProc(t, args("q2", p1.gossip)...)
	for _, p := range []*proc{p1, p2} {
		waitFor(t, 15*time.Second, "a two-node cluster", func() bool { return aliveMembers(p.addr) == 2 })
	}
	alice := procDial(t, p1.url(), "alice")
	var ids []string
	for i := range 12 {
		id := fmt.Sprintf("room-%02d", i)
		expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": id, "type": "community", "tags": []string{"games"}}, "")
		ids = append(ids, id)
	}
	want := newestFirst(t, alice, ids)
	bob := procDial(t, p2.url(), "bob")
	eventually(t, bob, protocol.ChannelsQueryArgs{Tags: []string{"games"}, Limit: 5}, want)
	eventually(t, bob, protocol.ChannelsQueryArgs{Type: protocol.TypeCommunity}, want)
	expect(t, alice, protocol.OpChannelUpdate, a("room-03", "public", false), "")
	want = slices.DeleteFunc(want, func(id string) bool { return id == "room-03" })
	eventually(t, bob, protocol.ChannelsQueryArgs{Tags: []string{"games"}, Limit: 5}, want)
}
