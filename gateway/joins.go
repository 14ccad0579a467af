package gateway

import (
	"encoding/json"
	"slices"
	"sync"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Join tokens. channel.join {token} is verified here: the token must be
// signed with the server's auth key and unexpired (token_invalid,
// token_expired), its sub must be the session's user, and it names the
// channel (args.channel, when given, must agree). The channel is sent the
// token's perms, never the token, and keeps them with the session's watch:
// they apply to this session in this channel for as long as that watch
// lasts (a kick, ban, leave or unwatch ends them).
//
// The gateway keeps the grant too, for one purpose: when the channel's
// activation changes, the hub re-watches the session (route) and the new
// activation learns the grant from that watch. A channel.join without a
// token, channel.watch, channel.unwatch or channel.leave issued by the
// client drops the grant, so the only way to perms is a verified token.

// grants are one session's join-token permissions by channel. The read
// loop and the inbox goroutine both use them.
type grants struct {
	mu sync.Mutex // guards the fields below
	m  map[string][]string
	// drops counts drops, so that a token join answered after the client
	// started or stopped a watch does not record a grant the channel has
	// already replaced.
	drops uint64
}

func (g *grants) get(ch string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.m[ch])
}

// setIf records perms for ch unless a grant was dropped since mark.
func (g *grants) setIf(ch string, perms []string, mark uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.drops != mark {
		return
	}
	if g.m == nil {
		g.m = make(map[string][]string)
	}
	g.m[ch] = slices.Clone(perms)
}

func (g *grants) drop(ch string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.m, ch)
	g.drops++
}

func (g *grants) mark() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.drops
}

// dropGrant ends the session's grant in ch when the client itself
// (re)starts or stops watching it.
func (s *session) dropGrant(op, ch string) {
	switch op {
	case protocol.OpChannelJoin, protocol.OpChannelWatch, protocol.OpChannelUnwatch, protocol.OpChannelLeave:
		s.grants.drop(ch)
	}
}

// tokenJoin handles a channel.join that carries a token. Over HTTP the
// token's perms decide the membership the join writes, and nothing
// watches.
func (g *Gateway) tokenJoin(o origin, a *protocol.WatchArgs, done answer) {
	fail := func(perr *protocol.Error) { done(errorReply(perr)) }
	j, perr := g.auth.Join(a.Token)
	if perr != nil {
		fail(perr)
		return
	}
	c := o.caller()
	if j.User != c.User {
		fail(protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: it was issued to another user"))
		return
	}
	if a.Channel != "" && a.Channel != j.Channel {
		fail(protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: it is for channel %s", j.Channel))
		return
	}
	if perr := g.checkID("token channel", j.Channel); perr != nil {
		fail(protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: %s", perr.Message))
		return
	}
	perms := j.Perms
	if len(perms) == 0 {
		perms = []string{"read"} // a join token lets one read, at least
	}
	grant := &channel.TokenGrant{ID: j.ID, ExpiresMS: j.Expires.UnixMilli()}
	if !j.IssuedAt.IsZero() {
		grant.IssuedAtMS = j.IssuedAt.UnixMilli()
	}
	fwd, _ := json.Marshal(channel.TokenJoinArgs{WatchArgs: protocol.WatchArgs{Channel: j.Channel, SinceSeq: a.SinceSeq}, Grant: grant})
	c.Perms = perms
	g.call(o, &clusterpb.Request{Kind: kindChannel, Target: j.Channel, Op: protocol.OpChannelJoin, Args: fwd, Caller: c}, done)
}
