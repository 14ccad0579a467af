package actors

import (
	"encoding/json"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Node-level ops, sent as KIND_NODE requests to a node's host actor.
const (
	// OpRelease asks the holder of a scope to stop serving it and fence it
	// (only if the holder agrees the asker owns it now).
	OpRelease = "_node.release"
	// OpFetch reads one chunk of a released scope's records.
	OpFetch = "_node.fetch"
	// OpDrop deletes a released scope's records once the new owner has them.
	OpDrop = "_node.drop"
	// OpPull asks a scope's owner to activate it (locating and pulling it
	// if need be) and answers once it serves: a draining node's way to hand
	// its scopes over.
	OpPull = "_node.pull"
	// OpStats returns the node's active actor counts.
	OpStats = "_node.stats"
)

// ScopeArgs name a scope in node-level ops.
type ScopeArgs struct {
	Kind  clusterpb.Kind `json:"kind"`
	ID    string         `json:"id"`
	After []byte         `json:"after,omitempty"`
}

// releaseResult answers OpRelease.
type releaseResult struct {
	Found   bool   `json:"found"`    // the node holds records of the scope
	Epoch   uint64 `json:"epoch"`    // its fence, after releasing
	WasLive bool   `json:"was_live"` // it served the scope until now
}

const (
	fetchChunkBytes = 512 << 10
	handoffTimeout  = 5 * time.Second
	maxBuffered     = 4096 // requests held per scope while it is located
)

func scopeOf(kind clusterpb.Kind, id string) persistence.Scope {
	if kind == clusterpb.Kind_KIND_USER {
		return persistence.Scope{Kind: persistence.KindUser, ID: id}
	}
	return persistence.Scope{Kind: persistence.KindChannel, ID: id}
}

func replyJSON(ctx actor.Context, req *clusterpb.Request, v any) {
	b, _ := json.Marshal(v)
	if req.ReplyTo != "" {
		ctx.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, b, nil))
	}
}

// nodeOp serves a KIND_NODE request.
func (h *hostActor) nodeOp(ctx actor.Context, req *clusterpb.Request) {
	if req.Op == OpStats {
		replyJSON(ctx, req, h.counts())
		return
	}
	if req.Op == OpScopes {
		h.scopes(ctx, req)
		return
	}
	var a ScopeArgs
	if err := protocol.DecodeArgs(req.Args, &a); err != nil || a.ID == "" {
		replyError(ctx, req, protocol.Errorf(protocol.CodeBadRequest, "bad scope"))
		return
	}
	key := cluster.ScopeKey(a.Kind, a.ID)
	sc := scopeOf(a.Kind, a.ID)
	switch req.Op {
	case OpRelease:
		h.release(ctx, req, a, key, sc)
	case OpFetch:
		st, err := h.d.Store.State(sc)
		if err != nil || !st.Released || st.ReleasedTo != h.asker(req) || h.children[key] != nil {
			replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "%s is not released to you here", key))
			return
		}
		// Reading half a megabyte is not for the routing mailbox: a few
		// exports at a time run beside it (a released scope is frozen, so
		// reading it later is reading it now).
		select {
		case h.exports <- struct{}{}:
		default:
			replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "too many transfers in progress; retry"))
			return
		}
		root := ctx.ActorSystem().Root
		store, after := h.d.Store, a.After
		h.exporting.Go(func() {
			defer func() { <-h.exports }()
			recs, last, done, err := store.Export(sc, after, fetchChunkBytes)
			if err != nil {
				root.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, nil, protocol.Errorf(protocol.CodeUnavailable, "export %s failed", key)))
				return
			}
			chunk := &clusterpb.Chunk{Last: last, Done: done, Records: make([]*clusterpb.Record, len(recs))}
			for i, r := range recs {
				chunk.Records[i] = &clusterpb.Record{Table: uint32(r.Table), Key: r.Key, Value: r.Value}
			}
			b, _ := proto.Marshal(chunk)
			root.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, b, nil))
		})
	case OpDrop:
		st, err := h.d.Store.State(sc)
		if err != nil || !st.Released || st.ReleasedTo != h.asker(req) || h.children[key] != nil || h.locating[key] != nil {
			return // only the node the copy went to may drop it
		}
		h.d.Store.Drop(sc, func(error) {})
	case OpPull:
		h.pull(ctx, req, a, key)
	default:
		replyError(ctx, req, protocol.Errorf(protocol.CodeBadRequest, "unknown node op %q", req.Op))
	}
}

// asker returns the name of the node a request came from.
func (h *hostActor) asker(req *clusterpb.Request) string {
	m, _ := h.d.Cluster.View().ByRemote(req.ReplyTo)
	return m.Name
}

// release hands a scope over to the node asking for it. Whatever this
// node holds of the scope — a running activation (even one that has not
// written yet), a live fence, or a copy — is released only when this
// node's own view agrees the asker owns the scope now, so two nodes with
// different views never steal a scope back and forth, and a node that
// wrongly believes it owns a scope stays unavailable. Only a node holding
// nothing at all answers "not found" whatever its view.
func (h *hostActor) release(ctx actor.Context, req *clusterpb.Request, a ScopeArgs, key string, sc persistence.Scope) {
	asker := h.asker(req)
	if h.locating[key] != nil {
		replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "%s is being located here too", key))
		return
	}
	st, err := h.d.Store.State(sc)
	if err != nil {
		replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "state of %s unreadable", key))
		return
	}
	c := h.children[key]
	if c == nil && !st.Live() && !st.HasData {
		replyJSON(ctx, req, releaseResult{Epoch: st.Epoch})
		return
	}
	if owner := h.d.Cluster.OwnerOf(a.Kind, a.ID); owner != asker || asker == "" {
		replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "%s: node %s owns it in this node's view, not %s", key, owner, asker))
		return
	}
	wasLive := c != nil || st.Live()
	self, root := ctx.Self(), ctx.ActorSystem().Root
	done := func(epoch uint64, err error) {
		root.Send(self, &released{req: req, sc: sc, epoch: epoch, wasLive: wasLive, err: err})
	}
	if c != nil {
		if c.releasing {
			replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "%s is already being released", key))
			return
		}
		c.releasing = true
		ctx.Send(c.pid, &releaseScope{to: asker, done: done})
		return
	}
	h.d.Store.Release(sc, asker, done)
}

// released completes an OpRelease.
type released struct {
	req     *clusterpb.Request
	sc      persistence.Scope
	epoch   uint64
	wasLive bool
	err     error
}

func (h *hostActor) onReleased(ctx actor.Context, m *released) {
	if m.err != nil {
		replyError(ctx, m.req, protocol.Errorf(protocol.CodeUnavailable, "release failed"))
		return
	}
	// An activation that had not written yet has nothing to send, but its
	// epoch still counts: the new owner fences above it.
	st, err := h.d.Store.State(m.sc)
	if err != nil {
		replyError(ctx, m.req, protocol.Errorf(protocol.CodeUnavailable, "state unreadable after release"))
		return
	}
	replyJSON(ctx, m.req, releaseResult{Found: st.HasData, Epoch: m.epoch, WasLive: m.wasLive && st.HasData})
}

// releaseScope asks a child to stop serving: it answers nothing new, lets
// its pending entries land, releases the scope's fence to node to, calls
// done, and stops.
type releaseScope struct {
	to   string
	done func(epoch uint64, err error)
}

// pull activates a scope this node owns and answers once it serves.
func (h *hostActor) pull(ctx actor.Context, req *clusterpb.Request, a ScopeArgs, key string) {
	if c := h.children[key]; c != nil && !c.releasing {
		replyJSON(ctx, req, struct{}{})
		return
	}
	if l := h.locating[key]; l != nil {
		l.waiters = append(l.waiters, req)
		return
	}
	if err := h.canActivate(a.Kind, a.ID); err != nil {
		replyError(ctx, req, err)
		return
	}
	st, err := h.d.Store.State(scopeOf(a.Kind, a.ID))
	if err != nil {
		replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "state of %s unreadable", key))
		return
	}
	if st.Live() {
		if _, err := h.activate(ctx, a.Kind, a.ID, key); err != nil {
			replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "could not activate %s", key))
			return
		}
		replyJSON(ctx, req, struct{}{})
		return
	}
	l := h.locate(ctx, a.Kind, a.ID, key)
	l.waiters = append(l.waiters, req)
}

// locating is a scope being located; requests for it wait here.
type locating struct {
	kind     clusterpb.Kind
	id       string
	pid      *actor.PID
	buffered []*clusterpb.Envelope
	waiters  []*clusterpb.Request // OpPull requests to answer when done
}

// located reports the end of a locate.
type located struct {
	key string
	err *protocol.Error
}

func (h *hostActor) locate(ctx actor.Context, kind clusterpb.Kind, id, key string) *locating {
	l := &locating{kind: kind, id: id}
	self := ctx.Self()
	l.pid = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &locator{d: h.d, kind: kind, id: id, key: key, sc: scopeOf(kind, id), host: self}
	}))
	h.byPID[l.pid.Id] = key
	h.locating[key] = l
	return l
}

func (h *hostActor) onLocated(ctx actor.Context, m *located) {
	l := h.locating[m.key]
	if l == nil {
		return
	}
	delete(h.locating, m.key)
	delete(h.byPID, l.pid.Id)
	ctx.Stop(l.pid)
	if m.err == nil {
		if _, err := h.activate(ctx, l.kind, l.id, m.key); err != nil {
			m.err = protocol.Errorf(protocol.CodeUnavailable, "could not activate %s", m.key)
		}
	}
	for _, req := range l.waiters {
		if m.err != nil {
			replyError(ctx, req, m.err)
		} else {
			replyJSON(ctx, req, struct{}{})
		}
	}
	for _, env := range l.buffered {
		if m.err != nil {
			replyError(ctx, env.GetRequest(), m.err)
			continue
		}
		h.route(ctx, env)
	}
}
