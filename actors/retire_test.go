package actors

import (
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// oneNode is the part of a cluster a lone host uses: its actor system,
// one shard, no other member. Anything else it is asked panics (the
// embedded interface is nil).
type oneNode struct {
	Cluster
	sys *actor.ActorSystem
}

func (n oneNode) Name() string                           { return "n1" }
func (n oneNode) System() *actor.ActorSystem             { return n.sys }
func (n oneNode) ShardOf(clusterpb.Kind, string) uint32  { return 1 }
func (n oneNode) OnChange(func(old, cur cluster.Member)) {}
func (n oneNode) Notify(*clusterpb.Request)              {}

// failingShard leads shard 1 and fails what it is told to: every Lead
// (leadErr), or every proposal (proposeErr), answered off the caller's
// goroutine as the engine does.
type failingShard struct {
	leadErr, proposeErr error
}

func (f failingShard) Lead(sh uint32, scope string, done func(*shard.Stream, error)) {
	go func() {
		if f.leadErr != nil {
			done(nil, f.leadErr)
			return
		}
		done(shard.NewStream(sh, 1, scope), nil)
	}()
}

func (f failingShard) Propose(_ *shard.Stream, _ []byte, done func(error)) {
	go done(f.proposeErr)
}

func (f failingShard) ReadIndex(_ *shard.Stream, done func(error)) { go done(nil) }

func (f failingShard) Status(sh uint32) (shard.Status, bool) {
	return shard.Status{Shard: sh, IsLeader: true, Term: 1, Leader: "n1"}, true
}

// TestEveryRequestToAFailingActivationIsAnswered: requests keep coming
// for a channel whose activations fail — at start, or at their first
// proposal. Every one is answered unavailable (the asker retries at once
// rather than wait out its timeout; a panic would answer internal): a
// failed activation does not stop itself while the host may still forward
// to it, so nothing lands in a dead mailbox.
func TestEveryRequestToAFailingActivationIsAnswered(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  failingShard
	}{
		{"lead fails", failingShard{leadErr: shard.ErrLost}},
		{"proposal fails", failingShard{proposeErr: shard.ErrLost}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := quietSystem(t)
			store, err := persistence.Open(t.TempDir(), persistence.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			replies := make(chan *clusterpb.Reply, 1024)
			if _, err := sys.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
				if env, ok := c.Message().(*clusterpb.Envelope); ok && env.GetReply() != nil {
					replies <- env.GetReply()
				}
			}), cluster.InboxPID("").Id); err != nil {
				t.Fatal(err)
			}
			host, err := StartHost(Deps{Cluster: oneNode{sys: sys}, Store: store, Replication: tc.rep,
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer sys.Root.Stop(host.PID)

			args, _ := json.Marshal(protocol.ChannelCreateArgs{ID: "room", Type: "standard"})
			const n = 2000
			go func() {
				for i := range n {
					req := &clusterpb.Request{Id: uint64(i + 1), Kind: clusterpb.Kind_KIND_CHANNEL, Target: "room",
						Op: protocol.OpChannelCreate, Args: args, Caller: &clusterpb.Caller{User: "u1"}, ReplyTo: sys.Address()}
					sys.Root.Send(host.PID, clusterpb.Wrap(&clusterpb.Envelope_Request{Request: req}))
				}
			}()
			answered := make(map[uint64]bool, n)
			deadline := time.After(30 * time.Second)
			for len(answered) < n {
				select {
				case r := <-replies:
					if r.Error == nil || r.Error.Code != string(protocol.CodeUnavailable) {
						t.Fatalf("request %d answered %v, want unavailable", r.Id, r.Error)
					}
					if answered[r.Id] {
						t.Fatalf("request %d answered twice", r.Id)
					}
					answered[r.Id] = true
				case <-deadline:
					t.Fatalf("%d of %d requests never answered", n-len(answered), n)
				}
			}
		})
	}
}
