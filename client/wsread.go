package client

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/switchboard-chat/switchboard/protocol"
)

// reader is a connection's read side: bytes read and not parsed yet, and
// a fragmented message being put together. Only whoever reads the
// connection touches it.
type reader struct {
	in   []byte // the read buffer (len == cap); in[r:w] is not parsed yet
	r, w int
	// need is the size of the frame in[r:w] begins (0: its header is not
	// all there yet).
	need  int
	msg   []byte // a fragmented message's payload so far
	msgOp byte   // its opcode (0: none in progress)
	limit int    // the largest message read
	// onMsg receives every message; its argument is valid until it
	// returns (the buffer is reused).
	onMsg func([]byte)
	// stop ends the reading after the message being handed on.
	stop bool
}

// readBufferSize is a connection's read buffer to begin with: a live
// room's events are a few hundred bytes, and several queued ones come in
// one read.
const readBufferSize = 4 << 10

func (r *reader) init(buffered []byte) {
	r.limit = readLimit
	r.in = make([]byte, max(readBufferSize, len(buffered)))
	r.w = copy(r.in, buffered)
}

// space returns the free end of the read buffer, making room for the
// frame in progress: the unparsed bytes move to the front, and the
// buffer grows for a frame larger than it (never past the limit: parse
// refuses larger frames) and shrinks back once a large one is done.
func (c *wsConn) space() []byte {
	if c.r == c.w {
		c.r, c.w = 0, 0
		if len(c.in) > keptReadBuffer {
			c.in = make([]byte, readBufferSize)
		}
	}
	need := max(c.need, maxHeader)
	if c.r > 0 && (c.w == len(c.in) || c.r+need > len(c.in)) {
		c.w = copy(c.in, c.in[c.r:c.w])
		c.r = 0
	}
	if need > len(c.in) {
		in := make([]byte, max(need, min(2*len(c.in), c.limit+maxHeader)))
		c.w = copy(in, c.in[c.r:c.w])
		c.in, c.r = in, 0
	}
	return c.in[c.w:]
}

// maxHeader is the longest server frame header (no mask).
const maxHeader = 10

// parse handles every whole frame in in[r:w]: messages go to onMsg
// (fragments are put together first), pings are answered, pongs
// signalled; a close frame or a broken one ends the reading with its
// error. A frame not all read yet stays for the next call.
func (c *wsConn) parse() error {
	for !c.stop {
		b := c.in[c.r:c.w]
		if len(b) < 2 {
			return nil
		}
		b0, b1 := b[0], b[1]
		if v := protocol.FrameViolation(b0, b1, false, c.msgOp != 0); v != "" {
			return &protocolError{protocol.CloseProtocolError, v}
		}
		fin, op := b0&0x80 != 0, b0&0x0F
		h := protocol.FrameHeaderLen(b1) // unmasked: FrameViolation saw to it
		if len(b) < h {
			return nil
		}
		n := protocol.FramePayloadLen(b)
		if op < protocol.FrameClose && n > uint64(c.limit-len(c.msg)) {
			return &protocolError{protocol.CloseMessageTooBig, "message over the read limit"}
		}
		size := h + int(n)
		if len(b) < size {
			c.need = size
			return nil
		}
		c.need = 0
		p := b[h:size]
		c.r += size
		switch {
		case op >= protocol.FrameClose:
			if err := c.control(op, p); err != nil {
				return err
			}
		case fin && op != protocol.FrameContinuation:
			c.onMsg(p)
		case op != protocol.FrameContinuation:
			c.msgOp, c.msg = op, append(c.msg[:0], p...)
		default:
			c.msg = append(c.msg, p...)
			if fin {
				c.msgOp = 0
				c.onMsg(c.msg)
				if c.msg = c.msg[:0]; cap(c.msg) > keptReadBuffer {
					c.msg = nil
				}
			}
		}
	}
	return nil
}

// control handles a control frame.
func (c *wsConn) control(op byte, p []byte) error {
	switch op {
	case protocol.FramePing:
		c.pong(p)
	case protocol.FramePong:
		select {
		case c.pongs <- struct{}{}:
		default:
		}
	case protocol.FrameClose:
		code, reason, v := protocol.ParseClose(p)
		if v != "" {
			return &protocolError{protocol.CloseProtocolError, v}
		}
		// The answer echoes the code; then the connection ends.
		echo := code
		if echo == protocol.CloseNoStatus {
			echo = protocol.CloseNormalClosure
		}
		_ = c.sendClose(context.Background(), echo, "", false)
		return CloseError{Code: code, Reason: reason}
	}
	return nil
}

// ended turns a parse error into the reading's end: a broken frame is
// answered with a close frame of its code.
func (c *wsConn) ended(err error) error {
	var perr *protocolError
	if errors.As(err, &perr) {
		_ = c.sendClose(context.Background(), perr.code, perr.msg, false)
	}
	return err
}

// readWith reads with Read (a TLS connection, one the client cannot see
// the socket of) until an error or stop.
func (c *wsConn) readWith() error {
	for {
		p := c.space()
		n, err := c.rwc.Read(p)
		c.w += n
		if n > 0 {
			if perr := c.parse(); perr != nil {
				return c.ended(perr)
			}
			if c.stop {
				return nil
			}
		}
		if err != nil {
			if c.closed.Load() {
				return net.ErrClosed
			}
			if err == io.EOF {
				return io.ErrUnexpectedEOF // no close frame came first
			}
			return err
		}
	}
}

// read reads until an error or stop, on the socket itself when it can.
func (c *wsConn) read() error {
	if c.w > c.r { // read with the upgrade's response, or after the first message
		if err := c.parse(); err != nil {
			return c.ended(err)
		}
		if c.stop {
			return nil
		}
	}
	if c.raw != nil {
		return c.readRaw()
	}
	return c.readWith()
}

// readFirst reads the first message (the connect reply): a copy of it.
// ctx bounds it: when it ends, the connection is closed.
func (c *wsConn) readFirst(ctx context.Context) ([]byte, error) {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, c.CloseNow)
		defer stop()
	}
	var first []byte
	c.onMsg = func(m []byte) { first, c.stop = append([]byte(nil), m...), true }
	err := c.read()
	c.onMsg, c.stop = nil, false
	if err != nil {
		c.CloseNow()
		c.closeSocket()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return first, nil
}

// serve reads until the connection ends, handing every message to
// onMsg; it returns why it ended, with the connection closed.
func (c *wsConn) serve(onMsg func([]byte)) error {
	c.onMsg = onMsg
	err := c.read()
	c.finish()
	return err
}

// finish closes the connection once its reading ended.
func (c *wsConn) finish() {
	c.CloseNow()
	c.closeSocket()
	close(c.readDone)
}
