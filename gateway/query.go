package gateway

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"sort"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/actors/directory"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// channelsQuery lists public channels, newest first, through the
// directory (package directory): it asks the shard that narrows the query
// most — the first tag's, else the type's, else every type's — for the ids
// after the cursor, then each channel for its current record. Channels no
// longer listed (made private, deleted) drop out at that second step, and
// so do channels whose node does not answer.
func (g *Gateway) channelsQuery(o origin, a *protocol.ChannelsQueryArgs, done answer) {
	fail := func(perr *protocol.Error) { done(errorReply(perr)) }
	limit, perr := g.pageLimit(a.Limit)
	if perr != nil {
		fail(perr)
		return
	}
	l := g.cfg.Limits
	if a.Type != "" && !protocol.ValidChannelType(a.Type) {
		fail(protocol.Errorf(protocol.CodeBadRequest, "type must be one of standard, private, conversation, broadcast, community, live"))
		return
	}
	if len(a.Tags) > l.MaxTags {
		fail(protocol.Errorf(protocol.CodeTooLarge, "%d tags, the limit is %d", len(a.Tags), l.MaxTags))
		return
	}
	for _, t := range a.Tags {
		if t == "" || len(t) > l.MaxNameLen {
			fail(protocol.Errorf(protocol.CodeBadRequest, "tags must be non-empty and at most %d bytes", l.MaxNameLen))
			return
		}
	}
	if _, err := hex.DecodeString(a.Cursor); err != nil || len(a.Cursor) > 2*(8+l.MaxIDLen) {
		fail(protocol.Errorf(protocol.CodeBadRequest, "invalid cursor"))
		return
	}
	q := directory.QueryArgs{After: a.Cursor, Limit: limit}
	var shards []string
	switch {
	case len(a.Tags) > 0:
		shards = []string{directory.TagShard(a.Tags[0])}
		q.Type, q.Tags = a.Type, a.Tags[1:]
	case a.Type != "":
		shards = []string{directory.TypeShard(a.Type)}
	default:
		for _, t := range []string{protocol.TypeStandard, protocol.TypeCommunity, protocol.TypeLive,
			protocol.TypeBroadcast, protocol.TypePrivate, protocol.TypeConversation} {
			shards = append(shards, directory.TypeShard(t))
		}
	}
	qargs, _ := json.Marshal(q)
	c := o.caller()
	reqs := make([]*clusterpb.Request, len(shards))
	for i, sh := range shards {
		reqs[i] = &clusterpb.Request{Kind: kindChannel, Target: sh, Op: directory.OpQuery, Args: qargs, Caller: c}
	}
	if !o.acquire() {
		return
	}
	g.gather(reqs, func(reps []*clusterpb.Reply) {
		hits, cursor, perr := mergeShards(shards, reps, limit)
		if perr != nil {
			o.release()
			fail(perr)
			return
		}
		creqs := make([]*clusterpb.Request, len(hits))
		for i, h := range hits {
			largs, _ := json.Marshal(channel.ListingArgs{Shard: h.shard})
			creqs[i] = &clusterpb.Request{Kind: kindChannel, Target: h.ID, Op: channel.OpListing, Args: largs, Caller: c}
		}
		g.fanoutHeld(o, creqs, func(reps []*clusterpb.Reply) {
			res := protocol.ChannelsQueryResult{Channels: []*protocol.Channel{}, Cursor: cursor}
			for i, rep := range reps {
				if rep.Error != nil {
					if protocol.Code(rep.Error.Code) == protocol.CodeNotFound {
						g.forgetListing(hits[i])
					}
					continue
				}
				var r channel.ListingResult
				if json.Unmarshal(rep.Result, &r) == nil && r.Channel != nil {
					res.Channels = append(res.Channels, r.Channel)
				}
			}
			b, _ := json.Marshal(res)
			done(resultReply(b))
		})
	})
}

// shardHit is a directory hit and the shard that returned it.
type shardHit struct {
	directory.Hit
	shard string
	key   []byte
}

// mergeShards merges the shards' answers into one page of at most limit
// hits in key order and the cursor that continues after it ("" when
// nothing follows). A shard that stopped early (its Last, not Done)
// bounds the page: keys past it might precede entries it has not read.
func mergeShards(shards []string, reps []*clusterpb.Reply, limit int) ([]shardHit, string, *protocol.Error) {
	var hits []shardHit
	var bound []byte // the smallest Last of the shards not done
	allDone := true
	for i, rep := range reps {
		if rep.Error != nil {
			return nil, "", replyError(rep)
		}
		var r directory.QueryResult
		if err := json.Unmarshal(rep.Result, &r); err != nil {
			return nil, "", protocol.Errorf(protocol.CodeInternal, "internal error")
		}
		for _, h := range r.Entries {
			k, err := hex.DecodeString(h.Key)
			if err != nil {
				continue
			}
			hits = append(hits, shardHit{Hit: h, shard: shards[i], key: k})
		}
		if !r.Done {
			allDone = false
			last, _ := hex.DecodeString(r.Last)
			if bound == nil || bytes.Compare(last, bound) < 0 {
				bound = last
			}
		}
	}
	sort.Slice(hits, func(i, j int) bool { return bytes.Compare(hits[i].key, hits[j].key) < 0 })
	page := make([]shardHit, 0, min(len(hits), limit))
	seen := make(map[string]bool, len(hits))
	more := !allDone
	for _, h := range hits {
		if bound != nil && bytes.Compare(h.key, bound) > 0 {
			more = true
			break
		}
		if seen[h.ID] {
			continue
		}
		if len(page) == limit {
			more = true
			break
		}
		seen[h.ID] = true
		page = append(page, h)
	}
	switch {
	case !more:
		return page, "", nil
	case len(page) > 0 && (len(page) == limit || bound == nil):
		return page, hex.EncodeToString(page[len(page)-1].key), nil
	case bound != nil:
		return page, hex.EncodeToString(bound), nil
	}
	return page, "", nil
}

// forgetListing tells a shard that a channel it listed does not exist (it
// was deleted, and ids are never reused): the highest version makes the
// removal final.
func (g *Gateway) forgetListing(h shardHit) {
	e := directory.Entry{ID: h.ID, Listed: false, Version: math.MaxUint64}
	b, _ := json.Marshal(&e)
	g.cl.Notify(&clusterpb.Request{Kind: kindChannel, Target: h.shard, Op: directory.OpPut, Args: b})
}
