//go:build !unix

package client

import (
	"errors"
	"net"
	"syscall"
)

// rawConnOf: elsewhere every connection is read with Read.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func (c *wsConn) readRaw() error { return errors.ErrUnsupported }
