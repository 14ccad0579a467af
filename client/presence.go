package client

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/switchboard-chat/switchboard/protocol"
)

// WatchPresence watches users' presence: presence events for them follow
// on the event stream. It returns their current profiles (unknown users
// are left out and not watched). After a reconnect the client watches
// them again and delivers their current status as presence events.
func (c *Client) WatchPresence(ctx context.Context, users []string) ([]protocol.User, error) {
	var r protocol.UsersResult
	if err := c.Call(ctx, protocol.OpPresenceWatch, protocol.PresenceArgs{Users: users}, &r); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.presence == nil {
		c.presence = make(map[string]struct{})
	}
	for _, u := range r.Users {
		c.presence[u.ID] = struct{}{}
	}
	c.mu.Unlock()
	return r.Users, nil
}

// UnwatchPresence stops watching users' presence.
func (c *Client) UnwatchPresence(ctx context.Context, users []string) error {
	c.mu.Lock()
	for _, u := range users {
		delete(c.presence, u)
	}
	c.mu.Unlock()
	return c.Call(ctx, protocol.OpPresenceUnwatch, protocol.PresenceArgs{Users: users}, nil)
}

// rewatchPresence watches the presence of every watched user again on a
// new connection, and delivers each one's current status.
func (c *Client) rewatchPresence() {
	c.mu.Lock()
	users := make([]string, 0, len(c.presence))
	for u := range c.presence {
		users = append(users, u)
	}
	c.mu.Unlock()
	slices.Sort(users)
	for chunk := range slices.Chunk(users, 100) {
		var r protocol.UsersResult
		if err := c.Call(c.ctx, protocol.OpPresenceWatch, protocol.PresenceArgs{Users: chunk}, &r); err != nil {
			c.opts.Logger.Warn("client: presence rewatch failed", "err", err)
			continue
		}
		for _, u := range r.Users {
			data, _ := json.Marshal(protocol.PresenceEvent{User: u.ID, Status: u.Status, LastSeen: u.LastSeen})
			c.deliver(Event{Name: protocol.EventPresence, Data: data})
		}
	}
}
