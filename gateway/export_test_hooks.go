package gateway

import "context"

// DropAll closes every session's connection abruptly, as a network failure
// would, without draining. Clients see a dropped connection.
func (g *Gateway) DropAll(ctx context.Context) {
	g.mu.Lock()
	for s := range g.sessions {
		s.conn.CloseNow()
	}
	g.mu.Unlock()
}
