package actors

import (
	"context"
	"encoding/json"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/actors/directory"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Export and webhooks need to reach every channel and user, not only the
// ones a caller names: a node lists the scopes of the shards it leads
// (OpScopes), in key order after a cursor, and the gateway merges the
// lists of every host node.

// OpScopes lists the ids of the scopes of a kind that a node serves.
const OpScopes = "_node.scopes"

// ScopesArgs page through a node's scopes.
type ScopesArgs struct {
	Kind  clusterpb.Kind `json:"kind"`
	After string         `json:"after,omitempty"`
	Limit int            `json:"limit,omitempty"` // 0 or more than 1000: 1000
}

// ScopesResult answers OpScopes: ids in key order (persistence.ScopeLess);
// fewer than asked means there are no more.
type ScopesResult struct {
	IDs []string `json:"ids"`
}

const maxScopesPage = 1000

// scopes serves OpScopes beside the mailbox (a page is up to a thousand
// seeks in each shard this node leads), a few at a time.
func (h *hostActor) scopes(ctx actor.Context, req *clusterpb.Request) {
	var a ScopesArgs
	if err := protocol.DecodeArgs(req.Args, &a); err != nil {
		replyError(ctx, req, err)
		return
	}
	if a.Limit <= 0 || a.Limit > maxScopesPage {
		a.Limit = maxScopesPage
	}
	select {
	case h.exports <- struct{}{}:
	default:
		replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "too many listings in progress; retry"))
		return
	}
	kind := persistence.KindChannel
	if a.Kind == clusterpb.Kind_KIND_USER {
		kind = persistence.KindUser
	}
	root, store := ctx.ActorSystem().Root, h.d.Store
	led := make([]uint32, 0, len(h.led))
	for sh := range h.led {
		led = append(led, sh)
	}
	h.exporting.Go(func() {
		defer func() { <-h.exports }()
		ids, err := store.ListScopes(led, kind, a.After, a.Limit)
		if err != nil {
			root.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, nil, protocol.Errorf(protocol.CodeUnavailable, "listing failed")))
			return
		}
		if ids == nil {
			ids = []string{}
		}
		b, _ := json.Marshal(ScopesResult{IDs: ids})
		root.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, b, nil))
	})
}

// WebhookSink is told of channels with events their webhook receiver has
// not acknowledged (the node's deliverer). It must not block.
type WebhookSink interface {
	Pending(channel string, last, delivered uint64)
}

// importDrive tells a channel actor to take the next step of an import
// it found in progress (a commit to finish, or a staging to abandon).
type importDrive struct{}

// driveImport takes that step, if any.
func (a *channelActor) driveImport(ctx actor.Context) {
	if a.state == nil || !a.usable() {
		return
	}
	if tok, ok := a.state.ImportAbandoned(a.d.Clock()); ok {
		args, _ := json.Marshal(channel.ImportTokenArgs{Token: tok})
		a.handle(ctx, &clusterpb.Request{Op: channel.OpImportAbort, Args: args})
	}
	if tok, ok := a.state.ImportOrphaned(); ok {
		args, _ := json.Marshal(channel.ImportTokenArgs{Token: tok})
		a.handle(ctx, &clusterpb.Request{Op: channel.OpImportCommit, Args: args})
	}
}

// webhookPending tells the sink when the channel has events to deliver.
func (a *channelActor) webhookPending() {
	if a.d.Webhooks == nil || a.state == nil {
		return
	}
	if last, delivered, ok := a.state.WebhookBacklog(); ok {
		a.d.Webhooks.Pending(a.id, last, delivered)
	}
}

// ClusterSource is the deliverer's way to a channel's events: requests
// to the channel's actor, wherever it runs.
type ClusterSource struct {
	Cluster *cluster.Cluster
}

// call sends req and waits for its reply or ctx.
func call(ctx context.Context, cl *cluster.Cluster, req *clusterpb.Request) *clusterpb.Reply {
	ch := make(chan *clusterpb.Reply, 1)
	timeout := cl.RequestTimeout()
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	cl.Request(req, timeout, func(rep *clusterpb.Reply) { ch <- rep })
	select {
	case rep := <-ch:
		return rep
	case <-ctx.Done():
		return &clusterpb.Reply{Error: &clusterpb.Error{Code: string(protocol.CodeUnavailable), Message: "abandoned"}}
	}
}

func replyErr(rep *clusterpb.Reply) error {
	if rep.Error == nil {
		return nil
	}
	return &protocol.Error{Code: protocol.Code(rep.Error.Code), Message: rep.Error.Message, RetryAfterMS: rep.Error.RetryAfterMs}
}

// Fetch asks a channel for the events after its acknowledged position.
func (s ClusterSource) Fetch(ctx context.Context, ch string) (*channel.WebhookBatch, error) {
	rep := call(ctx, s.Cluster, &clusterpb.Request{Kind: clusterpb.Kind_KIND_CHANNEL, Target: ch, Op: channel.OpWebhookFetch, Args: []byte("{}")})
	if err := replyErr(rep); err != nil {
		return nil, err
	}
	var b channel.WebhookBatch
	if err := json.Unmarshal(rep.Result, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Ack moves a channel's acknowledged position to seq, durably.
func (s ClusterSource) Ack(ctx context.Context, ch string, seq uint64) error {
	args, _ := json.Marshal(channel.WebhookAckArgs{Seq: seq})
	return replyErr(call(ctx, s.Cluster, &clusterpb.Request{Kind: clusterpb.Kind_KIND_CHANNEL, Target: ch, Op: channel.OpWebhookAck, Args: args}))
}

// Owned reports whether this node serves the channel now: a node delivers
// only its own channels' events, so one channel's are never posted by two
// nodes at once.
func (s ClusterSource) Owned(ch string) bool {
	return s.Cluster.OwnerOf(clusterpb.Kind_KIND_CHANNEL, ch) == s.Cluster.Name()
}

// WakeWebhookBacklog finds the channels of shard sh with events their
// webhook receiver has not acknowledged and activates each at its owner
// (which tells its deliverer): what a node runs when it starts leading a
// shard, for channels nobody touches. It reads the channels' counters in
// this node's replica only; it ends when ctx does or the shard has been
// read.
func WakeWebhookBacklog(ctx context.Context, store *persistence.Store, cl *cluster.Cluster, sh uint32) error {
	after := ""
	for {
		ids, err := store.ListScopes([]uint32{sh}, persistence.KindChannel, after, maxScopesPage)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if directory.IsShard(id) {
				continue
			}
			_, _, pending, err := channel.WebhookBacklogOf(store.Reader(sh, persistence.Scope{Kind: persistence.KindChannel, ID: id}))
			if err != nil || !pending {
				continue
			}
			call(ctx, cl, &clusterpb.Request{Kind: clusterpb.Kind_KIND_CHANNEL, Target: id, Op: channel.OpWebhookWake, Args: []byte("{}")})
		}
		if len(ids) < maxScopesPage {
			return nil
		}
		after = ids[len(ids)-1]
	}
}
