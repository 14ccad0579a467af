package gateway

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"iter"
	"net"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The server's side of the WebSocket opening handshake (RFC 6455 §4.2).
// The gateway does its own, as it reads its own frames (wsread.go) and
// writes its own (wsframe.go): a session needs no more of a connection
// than its socket and a small read buffer.

// wsGUID is the value RFC 6455 §1.3 appends to a client's key.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// handshakeError is a refused handshake: the status answered and why.
type handshakeError struct {
	status int
	msg    string
}

func (e *handshakeError) Error() string { return "websocket handshake: " + e.msg }

// checkHandshake checks r as the opening handshake of a WebSocket and
// returns the client's key, or the refusal to answer. Headers the answer
// must carry (the version this server speaks, the upgrade it expects)
// are set on h.
func checkHandshake(r *http.Request, h http.Header) (string, *handshakeError) {
	switch {
	case !r.ProtoAtLeast(1, 1):
		return "", &handshakeError{http.StatusUpgradeRequired, "the request must be HTTP/1.1 or later"}
	case !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade"),
		!httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "websocket"):
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "websocket")
		return "", &handshakeError{http.StatusUpgradeRequired, "a WebSocket upgrade is required (Connection: Upgrade, Upgrade: websocket)"}
	case r.Method != http.MethodGet:
		return "", &handshakeError{http.StatusMethodNotAllowed, "the handshake must be a GET"}
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		h.Set("Sec-WebSocket-Version", "13")
		return "", &handshakeError{http.StatusBadRequest, "only WebSocket version 13 is spoken here"}
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return "", &handshakeError{http.StatusBadRequest, "the handshake needs exactly one Sec-WebSocket-Key"}
	}
	key := strings.TrimSpace(keys[0])
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		return "", &handshakeError{http.StatusBadRequest, "Sec-WebSocket-Key must be 16 bytes in base64"}
	}
	return key, nil
}

// acceptKey is the Sec-WebSocket-Accept answering key.
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// subprotocols yields the subprotocols r offers, trimmed
// (Sec-WebSocket-Protocol is a list of tokens, in one header or several).
func subprotocols(r *http.Request) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
			for p := range strings.SplitSeq(v, ",") {
				if !yield(strings.TrimSpace(p)) {
					return
				}
			}
		}
	}
}

// errNoHijack: the ResponseWriter cannot hand its connection over.
var errNoHijack = errors.New("websocket handshake: the connection cannot be taken over")

// headHolder is a ResponseWriter that can hand its connection over with
// the 101 not yet written (upgradeWriter).
type headHolder interface {
	HijackHeld() (net.Conn, *bufio.ReadWriter, []byte, error)
}

// acceptWS answers r's opening handshake and takes the connection over:
// it returns the connection and a reader holding whatever the client
// sent after its request. Subprotocol (one the client offered, or ""
// for none) is the one chosen; no extension is (messages are framed once
// for every session that gets them, which per-connection compression
// would undo). A refused handshake has been answered with its status and
// reason.
//
// With hold, and a ResponseWriter that can (headHolder), the 101 is not
// written but returned: the connection's first write must carry it
// (wire.head). Otherwise head is nil: the 101 is written.
func acceptWS(w http.ResponseWriter, r *http.Request, subprotocol string, hold bool) (conn net.Conn, br *bufio.Reader, head []byte, err error) {
	key, herr := checkHandshake(r, w.Header())
	if herr != nil {
		http.Error(w, herr.msg, herr.status)
		return nil, nil, nil, herr
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, http.StatusText(http.StatusNotImplemented), http.StatusNotImplemented)
		return nil, nil, nil, errNoHijack
	}
	h := w.Header()
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Accept", acceptKey(key))
	if subprotocol != "" {
		h.Set("Sec-WebSocket-Protocol", subprotocol)
	}
	w.WriteHeader(http.StatusSwitchingProtocols)
	var brw *bufio.ReadWriter
	if hh, ok := w.(headHolder); ok && hold {
		conn, brw, head, err = hh.HijackHeld()
	} else {
		conn, brw, err = hj.Hijack() // writes the 101
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if br, err = smallReader(conn, brw.Reader); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	return conn, br, head, nil
}
