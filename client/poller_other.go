//go:build !linux

package client

// Elsewhere a Poller reads nothing: every connection keeps its read
// goroutine.
type pollShard struct{}

func (p *Poller) start(int) error { return nil }

func (s *pollShard) stop() {}

func (s *pollShard) add(*wsConn, func(error)) bool { return false }
