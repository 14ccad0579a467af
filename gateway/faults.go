package gateway

import "context"

// Fault injection: what tests of the whole node (cmd/switchboard, another
// package, hence not in a _test.go file) do to a gateway to play a
// failure. Neither is reachable from the network.

// DropAll closes every session's connection abruptly, as a network failure
// would, without draining. Clients see a dropped connection.
func (g *Gateway) DropAll(ctx context.Context) {
	g.mu.Lock()
	for s := range g.sessions {
		s.kill()
	}
	g.mu.Unlock()
}

// PausePresence stops (or resumes) this gateway's presence heartbeats
// while its sessions stay connected, as a hung gateway would.
func (g *Gateway) PausePresence(paused bool) { g.presence.paused.Store(paused) }
