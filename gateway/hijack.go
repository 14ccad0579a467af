package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
)

// readBufBytes is the read buffer of a session's connection. net/http
// hands a hijacked connection its 4 KiB read buffer, which a session would
// hold for its whole life; client frames are small, and a larger one is
// simply read in more than one call, so a smaller buffer saves memory on
// every idle session.
const readBufBytes = 512

// smallReader returns the reader a session reads conn with, given br,
// the reader its handshake was read with: br itself when it is that small
// already (UpgradeListener's, which reads conn), else a readBufBytes
// reader of what br has buffered (bytes the client sent right after its
// request) and then conn. net/http's hijacked reader is never read again:
// it reads through the server's own connection reader.
func smallReader(conn net.Conn, br *bufio.Reader) (*bufio.Reader, error) {
	if br.Size() <= readBufBytes {
		return br, nil
	}
	b, _ := br.Peek(br.Buffered())
	return readerAfter(b, conn)
}

// readerAfter returns a reader of a session's connection conn that
// first reads buffered, the bytes the client sent after its request (a
// copy: the caller's buffer is not kept): readBufBytes, or as large as
// buffered.
func readerAfter(buffered []byte, conn net.Conn) (*bufio.Reader, error) {
	if len(buffered) == 0 {
		return bufio.NewReaderSize(conn, readBufBytes), nil
	}
	r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), conn), max(readBufBytes, len(buffered)))
	if _, err := r.Peek(len(buffered)); err != nil {
		return nil, err
	}
	return r, nil
}
