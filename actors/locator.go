package actors

import (
	"encoding/json"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// locator finds a scope that this node now owns but holds no live copy of,
// and pulls it here before the scope's actor starts:
//
//  1. it asks every other known host (down ones too: stage 1 keeps data
//     on its holder's disk) to release the scope;
//  2. the holder with the newest copy — the one that was serving it, or
//     else the highest released epoch — sends it in chunks, which are
//     imported here and fenced, live, above every epoch seen;
//  3. the holder drops its copy.
//
// When nobody holds the scope and every host answered, it is new: the
// local fence is raised above every epoch seen. When some host did not
// answer and no live holder was found, the scope might be on that host:
// the locate fails with unavailable and callers retry.
type locator struct {
	d    *Deps
	kind clusterpb.Kind
	id   string
	key  string
	sc   persistence.Scope
	host *actor.PID

	local   persistence.ScopeState
	asked   int
	answers map[string]*clusterpb.Reply
	maxSeen uint64

	holder string
	epoch  uint64 // the epoch the imported copy is fenced at
	first  bool
}

type answer struct {
	node string
	rep  *clusterpb.Reply
}

type chunkArrived struct{ rep *clusterpb.Reply }

type imported struct {
	final bool
	last  []byte
	err   error
}

type fencedFresh struct{ err error }

func (l *locator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		l.start(ctx)
	case *answer:
		l.answers[m.node] = m.rep
		if len(l.answers) == l.asked {
			l.decide(ctx)
		}
	case *chunkArrived:
		l.onChunk(ctx, m.rep)
	case *imported:
		if m.err != nil {
			l.finish(ctx, protocol.Errorf(protocol.CodeUnavailable, "importing %s failed", l.key))
			return
		}
		if !m.final {
			l.fetch(ctx, m.last)
			return
		}
		// The copy here is live; the holder's may go.
		l.d.Cluster.RequestNode(l.holder, l.nodeReq(OpDrop, nil), handoffTimeout, func(*clusterpb.Reply) {})
		l.d.Logger.Info("scope moved here", "scope", l.key, "from", l.holder, "epoch", l.epoch)
		l.finish(ctx, nil)
	case *fencedFresh:
		if m.err != nil {
			l.finish(ctx, protocol.Errorf(protocol.CodeUnavailable, "fencing %s failed", l.key))
			return
		}
		l.finish(ctx, nil)
	}
}

func (l *locator) nodeReq(op string, after []byte) *clusterpb.Request {
	args, _ := json.Marshal(ScopeArgs{Kind: l.kind, ID: l.id, After: after})
	return &clusterpb.Request{Kind: clusterpb.Kind_KIND_NODE, Op: op, Args: args}
}

func (l *locator) start(ctx actor.Context) {
	var err error
	if l.local, err = l.d.Store.State(l.sc); err != nil {
		l.finish(ctx, protocol.Errorf(protocol.CodeUnavailable, "state of %s unreadable", l.key))
		return
	}
	l.maxSeen = l.local.Epoch
	l.answers = make(map[string]*clusterpb.Reply)
	self, root := ctx.Self(), ctx.ActorSystem().Root
	for _, node := range l.d.Cluster.View().Hosts() {
		if node == l.d.Cluster.Name() {
			continue
		}
		l.asked++
		req := l.nodeReq(OpRelease, nil)
		req.Target = node
		l.d.Cluster.RequestNode(node, req, handoffTimeout, func(rep *clusterpb.Reply) {
			root.Send(self, &answer{node: node, rep: rep})
		})
	}
	if l.asked == 0 {
		l.decide(ctx)
	}
}

func (l *locator) decide(ctx actor.Context) {
	var best *releaseResult
	failed := ""
	for node, rep := range l.answers {
		if rep.Error != nil {
			failed = node
			continue
		}
		var rr releaseResult
		if json.Unmarshal(rep.Result, &rr) != nil {
			failed = node
			continue
		}
		l.maxSeen = max(l.maxSeen, rr.Epoch)
		if !rr.Found {
			continue
		}
		if best == nil || (rr.WasLive && !best.WasLive) || (rr.WasLive == best.WasLive && rr.Epoch > best.Epoch) {
			r := rr
			best, l.holder = &r, node
		}
	}
	// This node's own released copy (an earlier hand-off that did not
	// finish) serves when no other node has a newer one. A copy here with
	// no fence at all is an import that never finished: never serve it.
	ownCopy := l.local.HasData && l.local.Released
	halfImport := l.local.HasData && l.local.Epoch == 0
	switch {
	case best != nil && best.WasLive:
		l.fetchFrom(ctx)
	case failed != "":
		l.finish(ctx, protocol.Errorf(protocol.CodeUnavailable, "%s may be held by node %s, which does not answer; retry", l.key, failed))
	case best != nil && !(ownCopy && l.local.Epoch >= best.Epoch):
		l.fetchFrom(ctx)
	case ownCopy || (!halfImport && l.maxSeen > 0):
		// This node's copy is the newest, or the scope is new here but was
		// fenced somewhere before (deleted, moved, dropped): make it live
		// here, fenced above every epoch seen.
		self, root := ctx.Self(), ctx.ActorSystem().Root
		l.d.Store.Log(l.sc).Fence(l.maxSeen+1, func(err error) { root.Send(self, &fencedFresh{err: err}) })
	case halfImport:
		l.d.Logger.Error("a partial copy of a scope has no source left; not serving it", "scope", l.key)
		l.finish(ctx, protocol.Errorf(protocol.CodeUnavailable, "%s: only a partial copy is left", l.key))
	default:
		// Nobody ever held it: nothing to fence (the activation fences
		// before its first write, if it ever writes).
		l.finish(ctx, nil)
	}
}

// fetchFrom starts pulling the newest copy from l.holder.
func (l *locator) fetchFrom(ctx actor.Context) {
	l.epoch = l.maxSeen + 1
	l.first = true
	l.fetch(ctx, nil)
}

func (l *locator) fetch(ctx actor.Context, after []byte) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	req := l.nodeReq(OpFetch, after)
	req.Target = l.holder
	l.d.Cluster.RequestNode(l.holder, req, handoffTimeout, func(rep *clusterpb.Reply) {
		root.Send(self, &chunkArrived{rep: rep})
	})
}

func (l *locator) onChunk(ctx actor.Context, rep *clusterpb.Reply) {
	if rep.Error != nil {
		l.finish(ctx, protocol.Errorf(protocol.CodeUnavailable, "fetching %s from %s failed: %s", l.key, l.holder, rep.Error.Message))
		return
	}
	var chunk clusterpb.Chunk
	if err := proto.Unmarshal(rep.Result, &chunk); err != nil {
		l.finish(ctx, protocol.Errorf(protocol.CodeUnavailable, "bad chunk of %s", l.key))
		return
	}
	recs := make([]persistence.SnapshotRecord, len(chunk.Records))
	for i, r := range chunk.Records {
		recs[i] = persistence.SnapshotRecord{Table: persistence.Table(r.Table), Key: r.Key, Value: r.Value}
	}
	first := l.first
	l.first = false
	self, root := ctx.Self(), ctx.ActorSystem().Root
	last, final := chunk.Last, chunk.Done
	l.d.Store.Import(l.sc, recs, first, final, l.epoch, func(err error) {
		root.Send(self, &imported{final: final, last: last, err: err})
	})
}

func (l *locator) finish(ctx actor.Context, err *protocol.Error) {
	if err != nil {
		l.d.Logger.Warn("locate failed", "scope", l.key, "err", err.Message)
	}
	// The host stops this actor once it has the report (stopping here
	// could let Terminated, a system message, overtake the report).
	ctx.Send(l.host, &located{key: l.key, err: err})
}

func (l *locator) String() string { return fmt.Sprintf("locator(%s)", l.key) }
