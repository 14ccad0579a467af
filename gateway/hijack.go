package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// readBufBytes is the read buffer of a session's connection. net/http
// hands a hijacked connection its 4 KiB read buffer, which a session would
// hold for its whole life; client frames are small, and a larger one is
// simply read in more than one call, so a smaller buffer saves memory on
// every idle session. The write buffer stays: each write is one coalesced
// message, and a smaller buffer would split it into more syscalls.
const readBufBytes = 1024

// smallReads wraps a ResponseWriter so that the WebSocket library's
// Hijack gets the connection with a readBufBytes read buffer.
type smallReads struct {
	http.ResponseWriter
	hj http.Hijacker
}

func (s smallReads) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := s.hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	n := brw.Reader.Buffered() // bytes the client sent right after its request
	if n > readBufBytes {
		return conn, brw, nil // rare: keep the big buffer that holds them
	}
	r := bufio.NewReaderSize(conn, readBufBytes)
	if n > 0 {
		// The library takes over what is buffered (not what is behind the
		// reader), so the bytes go into the new buffer.
		b, _ := brw.Reader.Peek(n)
		r.Reset(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn))
		if _, err := r.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(r, brw.Writer), nil
}

// withSmallReads returns w wrapped when it can hijack, else w.
func withSmallReads(w http.ResponseWriter) http.ResponseWriter {
	if hj, ok := w.(http.Hijacker); ok {
		return smallReads{ResponseWriter: w, hj: hj}
	}
	return w
}
