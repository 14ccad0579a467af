package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coder/websocket"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/persistence/raftstore"
	"github.com/switchboard-chat/switchboard/protocol"
)

// storeSize counts the records and bytes of every channel and user scope
// in the node's store (every shard's state, without the shards' own
// bookkeeping).
func storeSize(t *testing.T, s *persistence.Store) (records, bytes int) {
	t.Helper()
	it, err := s.DB().NewIter(&pebble.IterOptions{LowerBound: []byte{0x02}, UpperBound: []byte{0x03}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); len(k) == len(raftstore.AppliedStateKey(0)) {
			continue
		}
		records++
		bytes += len(it.Key()) + len(it.Value())
	}
	return records, bytes
}

// liveViewers is how many real WebSocket sessions join the live channel.
// The state-machine test (actors/channel TestLiveViewersWriteNothing)
// joins 5,000; here each viewer is a real connection through the gateway
// and the actor pipeline into Pebble, kept to a number that runs in a
// second or two under -race on two cores.
const liveViewers = 500

// TestLiveViewersWriteNothingToStore connects viewers, then has every one
// of them join a live channel, and checks that the store holds exactly
// the same records, byte for byte in size, before and after the joins.
func TestLiveViewersWriteNothingToStore(t *testing.T) {
	n := testNode(t)
	host := dial(t, n, "host")
	expect(t, host, protocol.OpChannelCreate, map[string]any{"id": "stage", "type": "live", "attached_to": map[string]any{"stream_id": "s1"}}, "")
	expect(t, host, protocol.OpMessageSend, a("stage", "client_id", "h1", "text", "live now"), "")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conns := make([]*websocket.Conn, liveViewers)
	roundTrip := func(c *websocket.Conn, frame string) string {
		if err := c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		for { // skip events until the reply
			_, msg, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range strings.Split(string(msg), "\n") {
				if strings.HasPrefix(f, `{"id":`) {
					return f
				}
			}
		}
	}
	for i := range conns {
		c, _, err := websocket.Dial(ctx, "ws://"+n.Addr()+"/v1/ws", &websocket.DialOptions{Subprotocols: []string{"switchboard.v1.json"}})
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		t.Cleanup(func() { c.CloseNow() })
		conns[i] = c
		if r := roundTrip(c, fmt.Sprintf(`{"id":1,"op":"connect","args":{"user_id":"viewer%d"}}`, i)); !strings.Contains(r, `"result"`) {
			t.Fatalf("connect: %s", r)
		}
		// connect does not wait for a new user's profile to be stored;
		// "me" queues behind the write, so it is stored before the count.
		if r := roundTrip(c, `{"id":2,"op":"me"}`); !strings.Contains(r, `"result"`) {
			t.Fatalf("me: %s", r)
		}
	}
	records, bytes := storeSize(t, n.store)
	for i, c := range conns {
		if r := roundTrip(c, `{"id":2,"op":"channel.join","args":{"channel":"stage"}}`); !strings.Contains(r, `"result"`) {
			t.Fatalf("viewer %d join: %s", i, r)
		}
	}
	// A join's reply follows its entry's durability, but notices to user
	// actors follow the reply: each viewer's own user actor answering
	// "me" afterwards is the fence for those.
	for i, c := range conns {
		if r := roundTrip(c, `{"id":3,"op":"me"}`); !strings.Contains(r, `"result"`) {
			t.Fatalf("viewer %d me: %s", i, r)
		}
	}
	r2, b2 := storeSize(t, n.store)
	if r2 != records || b2 != bytes {
		t.Errorf("%d live viewers joining changed the store: %d records / %d bytes, was %d / %d", liveViewers, r2, b2, records, bytes)
	}
	var g protocol.ChannelResult
	if err := host.Call(ctxT(t), protocol.OpChannelGet, a("stage"), &g); err != nil || g.Channel.MemberCount != 1 {
		t.Errorf("member_count %d, want 1: viewers are not members (%v)", g.Channel.MemberCount, err)
	}
	// They are watching: the host's next message reaches them.
	expect(t, host, protocol.OpMessageSend, a("stage", "client_id", "h2", "text", "hello viewers"), "")
	for i, c := range conns[:10] {
		_, msg, err := c.Read(ctx)
		if err != nil || !strings.Contains(string(msg), "hello viewers") {
			t.Fatalf("viewer %d got %s %v", i, msg, err)
		}
	}
}

// TestLookupsOfUnknownIDsWriteNothing: reading channels and users that
// exist nowhere activates actors but writes no record, not even a fence,
// so random ids cannot grow the disk.
func TestLookupsOfUnknownIDsWriteNothing(t *testing.T) {
	n := testNode(t)
	c := dial(t, n, "prober")
	ctx := ctxT(t)
	// The prober's own profile is stored before the count ("me" queues
	// behind its write: connect does not wait for it).
	if err := c.Call(ctx, protocol.OpMe, struct{}{}, nil); err != nil {
		t.Fatal(err)
	}
	scopes := func() int {
		count := 0
		_, shards := n.cl.Identity()
		for sh := range shards {
			for _, kind := range []persistence.Kind{persistence.KindChannel, persistence.KindUser} {
				ids, err := n.store.ListScopes([]uint32{sh}, kind, "", 0)
				if err != nil {
					t.Fatal(err)
				}
				count += len(ids)
			}
		}
		return count
	}
	beforeScopes := scopes()
	beforeRecords, beforeBytes := storeSize(t, n.store)
	var ids []string
	for i := range 50 {
		ch := fmt.Sprintf("nowhere-%d", i)
		err := c.Call(ctx, protocol.OpChannelGet, protocol.ChannelRef{Channel: ch}, nil)
		if pe, ok := err.(*protocol.Error); !ok || pe.Code != protocol.CodeNotFound {
			t.Fatalf("get %s: %v, want not_found", ch, err)
		}
		ids = append(ids, fmt.Sprintf("nobody-%d", i))
	}
	var users struct {
		Users []protocol.User `json:"users"`
	}
	if err := c.Call(ctx, protocol.OpUsersGet, map[string]any{"ids": ids}, &users); err != nil || len(users.Users) != 0 {
		t.Fatalf("users.get: %+v %v", users, err)
	}
	afterRecords, afterBytes := storeSize(t, n.store)
	if got := scopes(); got != beforeScopes || afterRecords != beforeRecords || afterBytes != beforeBytes {
		t.Fatalf("lookups wrote: scopes %d→%d, records %d→%d, bytes %d→%d",
			beforeScopes, got, beforeRecords, afterRecords, beforeBytes, afterBytes)
	}
}
