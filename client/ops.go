package client

import (
	"context"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Join joins a channel (becoming a member, or a viewer of a live channel)
// and watches it. The result's messages are the newest page; events after
// its seq arrive on the event stream.
func (c *Client) Join(ctx context.Context, channel string) (*protocol.WatchResult, error) {
	var r protocol.WatchResult
	if err := c.Call(ctx, protocol.OpChannelJoin, protocol.JoinArgs{Channel: channel}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Watch watches a channel without joining it. With since set, the events
// after it are delivered on the event stream before live ones.
func (c *Client) Watch(ctx context.Context, channel string, since *uint64) (*protocol.WatchResult, error) {
	var r protocol.WatchResult
	if err := c.Call(ctx, protocol.OpChannelWatch, protocol.WatchArgs{Channel: channel, SinceSeq: since}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Unwatch stops watching a channel.
func (c *Client) Unwatch(ctx context.Context, channel string) error {
	c.forget(channel)
	return c.Call(ctx, protocol.OpChannelUnwatch, protocol.ChannelRef{Channel: channel}, nil)
}

// Leave ends membership of a channel and stops watching it.
func (c *Client) Leave(ctx context.Context, channel string) error {
	c.forget(channel)
	return c.Call(ctx, protocol.OpChannelLeave, protocol.ChannelRef{Channel: channel}, nil)
}

func (c *Client) forget(channel string) {
	c.mu.Lock()
	delete(c.watched, channel)
	if c.lastWatch.channel == channel {
		c.lastWatch = lastWatch{}
	}
	c.mu.Unlock()
}

// lastWatch is the watch of the last event's channel: a viewer's events
// are nearly all one channel's, and for thousands of clients the map
// lookup (its buckets and the key's bytes, cold in the cache) was a
// visible part of an event's cost.
type lastWatch struct {
	channel string
	w       *watch
}

// watchOf returns ch's watch (nil: not watched). c.mu is held.
func (c *Client) watchOf(ch string) *watch {
	if c.lastWatch.w != nil && c.lastWatch.channel == ch {
		return c.lastWatch.w
	}
	w := c.watched[ch]
	if w != nil {
		c.lastWatch = lastWatch{ch, w}
	}
	return w
}

// LastSeq returns the last seq delivered for a watched channel.
func (c *Client) LastSeq(channel string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.watched[channel]
	if !ok {
		return 0, false
	}
	return w.seq, true
}

// Send sends a message. An empty ClientID is filled with a fresh one; the
// same ClientID is used for every resend, so the message is created once.
func (c *Client) Send(ctx context.Context, args protocol.SendArgs) (*protocol.Message, error) {
	if args.ClientID == "" {
		args.ClientID = NewClientID()
	}
	var r protocol.MessageResult
	if err := c.Call(ctx, protocol.OpMessageSend, args, &r); err != nil {
		return nil, err
	}
	return r.Message, nil
}

// History reads a page of messages.
func (c *Client) History(ctx context.Context, args protocol.HistoryArgs) (*protocol.HistoryResult, error) {
	var r protocol.HistoryResult
	if err := c.Call(ctx, protocol.OpMessagesHistory, args, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// CreateChannel creates a channel; the creating session watches it.
func (c *Client) CreateChannel(ctx context.Context, args protocol.ChannelCreateArgs) (*protocol.Channel, uint64, error) {
	var r struct {
		Channel *protocol.Channel `json:"channel"`
		Seq     uint64            `json:"seq"`
	}
	if err := c.Call(ctx, protocol.OpChannelCreate, args, &r); err != nil {
		return nil, 0, err
	}
	return r.Channel, r.Seq, nil
}
