//go:build !linux

package gateway

import "net"

// rawWriter writes without waiting; on this platform there is none, and
// every write waits on its own goroutine (wire.writeAll).
type rawWriter interface {
	tryWrite(bufs [][]byte, scratch *iovecs) (int, error)
}

type iovecs struct{}

func newRawWriter(net.Conn) rawWriter { return nil }
