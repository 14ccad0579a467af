//go:build !linux

package client

import "testing"

// polledFD: a Poller reads on Linux only (its tests skip elsewhere).
func polledFD(t *testing.T, _ *wsConn) int {
	t.Skip("the poller reads on Linux only")
	return -1
}
