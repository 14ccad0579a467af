package channel

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/switchboard-chat/switchboard/actors/directory"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The channel's side of the public-channel directory (package directory):
// it tells the directory shards of its type and tags when its listing
// changes, and answers the gateway's check of each channel a query found.

// OpListing is an internal op (never accepted from clients): the channel's
// record if it is publicly listed, for channels.query. Args: ListingArgs.
const OpListing = "_channel.listing"

// ListingArgs name the shard that listed the channel, so that a channel no
// longer listed there tells that shard to forget it.
type ListingArgs struct {
	Shard string `json:"shard,omitempty"`
}

// ListingResult is {channel}, null when the channel is not listed.
type ListingResult struct {
	Channel *protocol.Channel `json:"channel"`
}

// DirNotice is one notification for a directory shard (op directory.OpPut).
type DirNotice struct {
	Shard string
	Args  []byte
}

// listing is the channel's directory entry now.
func (s *State) listing() directory.Entry {
	if !s.exists {
		return directory.Entry{}
	}
	ch := &s.meta.Channel
	return directory.Entry{
		ID:        s.id,
		Type:      ch.Type,
		Tags:      ch.Tags, // replaced, never changed in place, by updates
		Listed:    ch.Public && !ch.Deleted,
		CreatedMS: ch.CreatedAt.UnixMilli(),
		Version:   s.meta.DirVersion,
	}
}

func sameListing(a, b *directory.Entry) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Listed == b.Listed && a.CreatedMS == b.CreatedMS && slices.Equal(a.Tags, b.Tags)
}

// listingChanged runs after a command that writes: when the listing moved
// from before, it takes a new version and tells every shard that listed
// the channel before or lists it now.
func (s *State) listingChanged(before directory.Entry) {
	now := s.listing()
	if sameListing(&before, &now) {
		return
	}
	s.meta.DirVersion++
	s.settingsChanged()
	now.Version = s.meta.DirVersion
	shards := before.Shards()
	for _, sh := range now.Shards() {
		if !slices.Contains(shards, sh) {
			shards = append(shards, sh)
		}
	}
	s.cur.Directory = append(s.cur.Directory, notices(&now, shards)...)
}

func notices(e *directory.Entry, shards []string) []DirNotice {
	if len(shards) == 0 {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		panic("channel: encode listing: " + err.Error())
	}
	out := make([]DirNotice, len(shards))
	for i, sh := range shards {
		out[i] = DirNotice{Shard: sh, Args: b}
	}
	return out
}

// Announce returns the notifications an activation sends when it starts:
// the current listing to the shards that should list it. A notification
// lost to a node failure is so repaired the next time the channel runs.
func (s *State) Announce() []DirNotice {
	e := s.listing()
	return notices(&e, e.Shards())
}

func (s *State) handleListing(c Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a ListingArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	e := s.listing()
	if e.Listed {
		return ListingResult{Channel: s.channelView()}, nil
	}
	if directory.IsShard(a.Shard) {
		// The shard holds a stale entry: tell it the current one.
		s.cur.Directory = notices(&e, []string{a.Shard})
	}
	return ListingResult{}, nil
}
