package gateway

import (
	"encoding/json"
	"sort"
	"sync"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// usersGet returns the users with the given ids (unknown ones are left out).
func (g *Gateway) usersGet(o origin, a *protocol.UsersGetArgs, done answer) {
	if len(a.IDs) > g.cfg.Limits.MaxHistoryLimit {
		done(errorReply(protocol.Errorf(protocol.CodeTooLarge, "%d ids, at most %d per request", len(a.IDs), g.cfg.Limits.MaxHistoryLimit)))
		return
	}
	c := o.caller()
	reqs := make([]*clusterpb.Request, len(a.IDs))
	for i, u := range a.IDs {
		if perr := g.checkID("ids", u); perr != nil {
			done(errorReply(perr))
			return
		}
		reqs[i] = &clusterpb.Request{Kind: kindUser, Target: u, Op: user.OpGet, Caller: c}
	}
	g.fanout(o, reqs, func(reps []*clusterpb.Reply) { done(usersReply(reps)) })
}

// usersReply is {users}: the user of each reply, in order, leaving out
// users that do not exist.
func usersReply(reps []*clusterpb.Reply) *clusterpb.Reply {
	users := make([]json.RawMessage, 0, len(reps))
	for _, rep := range reps {
		if rep.Error != nil {
			if protocol.Code(rep.Error.Code) == protocol.CodeNotFound {
				continue
			}
			return rep
		}
		var u struct {
			User json.RawMessage `json:"user"`
		}
		if json.Unmarshal(rep.Result, &u) == nil {
			users = append(users, u.User)
		}
	}
	res, _ := json.Marshal(map[string]any{"users": users})
	return resultReply(res)
}

// fanout sends reqs concurrently and calls done once with every reply, in
// the order of reqs. It holds one of o's in-flight slots meanwhile.
func (g *Gateway) fanout(o origin, reqs []*clusterpb.Request, done func([]*clusterpb.Reply)) {
	if o.acquire() {
		g.fanoutHeld(o, reqs, done)
	}
}

// fanoutHeld is fanout for a caller that already holds o's slot; it
// releases it before done. It never blocks.
func (g *Gateway) fanoutHeld(o origin, reqs []*clusterpb.Request, done func([]*clusterpb.Reply)) {
	g.gather(reqs, func(reps []*clusterpb.Reply) {
		o.release()
		done(reps)
	})
}

// gather sends reqs concurrently and calls done once with every reply, in
// the order of reqs (at once for none). It never blocks.
func (g *Gateway) gather(reqs []*clusterpb.Request, done func([]*clusterpb.Reply)) {
	reps := make([]*clusterpb.Reply, len(reqs))
	if len(reqs) == 0 {
		done(reps)
		return
	}
	var mu sync.Mutex
	left := len(reqs)
	for i, r := range reqs {
		g.cl.Request(r, g.cfg.RequestTimeout, func(rep *clusterpb.Reply) {
			mu.Lock()
			reps[i] = rep
			left--
			last := left == 0
			mu.Unlock()
			if last {
				done(reps)
			}
		})
	}
}

// channelsList lists the caller's channels, newest activity first. The
// user's actor holds the ids; each channel answers a summary from memory.
// The cursor is the last entry's (last_activity, id).
func (g *Gateway) channelsList(o origin, a *protocol.ChannelsListArgs, done answer) {
	limit, perr := g.pageLimit(a.Limit)
	if perr != nil {
		done(errorReply(perr))
		return
	}
	var after *listCursor
	if a.Cursor != "" {
		c, ok := parseCursor(a.Cursor)
		if !ok {
			done(errorReply(protocol.Errorf(protocol.CodeBadRequest, "invalid cursor")))
			return
		}
		after = &c
	}
	if !o.acquire() {
		return
	}
	c := o.caller()
	g.cl.Request(&clusterpb.Request{Kind: kindUser, Target: c.User, Op: user.OpChannels, Caller: c}, g.cfg.RequestTimeout, func(rep *clusterpb.Reply) {
		var ids user.ChannelsResult
		if bad := decodeResult(rep, &ids); bad != nil {
			o.release()
			done(bad)
			return
		}
		reqs := make([]*clusterpb.Request, len(ids.Channels))
		for i, ch := range ids.Channels {
			reqs[i] = &clusterpb.Request{Kind: kindChannel, Target: ch, Op: channel.OpSummary, Caller: c}
		}
		g.fanoutHeld(o, reqs, func(reps []*clusterpb.Reply) {
			done(finishList(ids.Channels, reps, after, limit))
		})
	})
}

// finishList pages the summaries. A channel that cannot answer does not
// fail the list: it is named in unavailable (on the first page, since
// without its summary it has no place in the order).
func finishList(ids []string, reps []*clusterpb.Reply, after *listCursor, limit int) *clusterpb.Reply {
	var chans []*protocol.Channel
	var unavailable []string
	for i, rep := range reps {
		if rep.Error != nil {
			switch protocol.Code(rep.Error.Code) {
			case protocol.CodeNotMember, protocol.CodeNotFound:
				// left or deleted since the index saw it
			default:
				unavailable = append(unavailable, ids[i])
			}
			continue
		}
		var c protocol.Channel
		if json.Unmarshal(rep.Result, &c) == nil {
			chans = append(chans, &c)
		}
	}
	sort.Slice(chans, func(i, j int) bool { return cursorOf(chans[i]).before(cursorOf(chans[j])) })
	start := 0
	if after != nil {
		start = sort.Search(len(chans), func(i int) bool { return after.before(cursorOf(chans[i])) })
	}
	page := chans[start:]
	res := protocol.ChannelsListResult{Channels: page}
	if after == nil {
		res.Unavailable = unavailable
	}
	if len(page) > limit {
		res.Channels = page[:limit]
		res.Cursor = cursorOf(page[limit-1]).String()
	}
	if res.Channels == nil {
		res.Channels = []*protocol.Channel{}
	}
	b, _ := json.Marshal(res)
	return resultReply(b)
}
