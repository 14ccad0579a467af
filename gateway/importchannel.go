package gateway

import (
	"context"
	"encoding/json"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The gateway's side of a channel's import (import.go): its chunks to the
// channel (channel.OpImportStage), one in flight, then the commit to its
// end (channel.OpImportCommit), or the abort of a refused channel.

// send sends the group's chunk to its channel. A chunk that is not the
// last goes while the next is read (one in flight per channel: the
// channel takes them in order); the last is waited for, and send reports
// whether the channel's import is done.
func (imp *importer) send(g *group, final bool) bool {
	imp.wait(g)
	if g.failed {
		return false
	}
	args := channel.ImportStageArgs{Token: imp.token, DryRun: imp.dry, Chunk: g.sent, Final: final, Records: g.chunk}
	if g.sent == 0 {
		args.Channel = g.record
	}
	chunk := g.chunk
	g.chunk, g.size = nil, 0
	g.sent++
	g.staged = g.staged || !imp.dry
	req := &clusterpb.Request{Kind: kindChannel, Target: g.id, Op: channel.OpImportStage, Args: args.Encode(),
		Caller: &clusterpb.Caller{Admin: true}}
	inflight := make(chan *clusterpb.Reply, 1)
	go func() { inflight <- imp.g.requestRetrying(imp.ctx, req) }()
	g.inflight, g.inflightChunk = inflight, chunk
	if !final {
		return false
	}
	return imp.wait(g)
}

// wait takes the reply of the chunk in flight, if any, and reports
// whether the channel's import is done.
func (imp *importer) wait(g *group) bool {
	if g.inflight == nil {
		return false
	}
	r := <-g.inflight
	chunk := g.inflightChunk
	g.inflight, g.inflightChunk = nil, nil
	rep, ok := imp.reply(g, r)
	if !ok {
		return false
	}
	if len(rep.Errors) > 0 {
		g.failed = true
		for _, e := range rep.Errors {
			imp.fail(e.Line, &protocol.Error{Code: e.Code, Message: e.Message})
		}
		// A channel that does not exist: every one of its lines says so.
		if e := rep.Errors[0]; e.Code == protocol.CodeNotFound && g.record == nil && len(chunk) > 0 && e.Line == chunk[0].Line {
			g.refusal = &protocol.Error{Code: e.Code, Message: e.Message}
			for _, l := range chunk[1:] {
				imp.fail(l.Line, g.refusal)
			}
		}
		return false
	}
	imp.count(g, rep)
	return rep.Done
}

// count adds a reply's counts to the group's.
func (imp *importer) count(g *group, rep channel.ImportReply) {
	g.counts.Skipped += rep.Skipped
	if imp.dry || rep.Done {
		g.counts.Channels += rep.Channels
		g.counts.Members += rep.Members
		g.counts.Messages += rep.Messages
	}
}

// call sends one import op of a group and decodes its reply.
func (imp *importer) call(g *group, op string, args any) (channel.ImportReply, bool) {
	b, _ := json.Marshal(args)
	return imp.reply(g, imp.g.requestRetrying(imp.ctx, &clusterpb.Request{Kind: kindChannel, Target: g.id, Op: op, Args: b,
		Caller: &clusterpb.Caller{Admin: true}}))
}

// reply decodes the reply of an import op; a failure fails the group
// (reported at its first line).
func (imp *importer) reply(g *group, r *clusterpb.Reply) (channel.ImportReply, bool) {
	var rep channel.ImportReply
	if r.Error != nil {
		g.failed = true
		imp.fail(g.line, replyError(r))
		return rep, false
	}
	if err := json.Unmarshal(r.Result, &rep); err != nil {
		g.failed = true
		imp.fail(g.line, protocol.Errorf(protocol.CodeInternal, "bad import reply"))
		return rep, false
	}
	return rep, true
}

// finishGroup ends the current channel's import: the last chunk, then
// the commit to its end; or, for a refused channel, the abort.
func (imp *importer) finishGroup() {
	g := imp.cur
	if g == nil {
		return
	}
	imp.cur = nil
	if g.failed {
		imp.wait(g)
		imp.abort(g)
		return
	}
	done := imp.send(g, true) || imp.dry
	for !g.failed && !done {
		rep, ok := imp.call(g, channel.OpImportCommit, channel.ImportTokenArgs{Token: imp.token})
		if !ok {
			break
		}
		imp.count(g, rep)
		done = rep.Done
	}
	if g.failed {
		imp.abort(g)
		return
	}
	imp.mu.Lock()
	imp.res.Channels += g.counts.Channels
	imp.res.Members += g.counts.Members
	imp.res.Messages += g.counts.Messages
	imp.res.Skipped += g.counts.Skipped
	imp.mu.Unlock()
	if !imp.dry {
		imp.ensure(g.refs)
	}
}

// abortGroup ends the current channel's import early (the body failed).
func (imp *importer) abortGroup() {
	if g := imp.cur; g != nil {
		imp.cur = nil
		imp.wait(g)
		imp.abort(g)
	}
}

// abort drops what a refused channel staged, if anything (best effort:
// staging left behind is dropped by the channel's next import, or once
// it is stale).
func (imp *importer) abort(g *group) {
	if !g.staged {
		return
	}
	ctx := context.WithoutCancel(imp.ctx)
	b, _ := json.Marshal(channel.ImportTokenArgs{Token: imp.token})
	imp.g.requestRetrying(ctx, &clusterpb.Request{Kind: kindChannel, Target: g.id, Op: channel.OpImportAbort, Args: b,
		Caller: &clusterpb.Caller{Admin: true}})
}
