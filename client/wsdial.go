package client

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/switchboard-chat/switchboard/protocol"
)

// subprotocol is the WebSocket subprotocol the client asks for.
const subprotocol = protocol.Subprotocol

// acceptGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// dialWS makes the WebSocket upgrade to rawURL with hc (dialClient's:
// its upgrader when hc's transport is an *http.Transport) and checks
// the server's 101. ctx bounds the upgrade. A first frame (non-nil) is
// offered in a connect subprotocol; taken reports whether the server took
// it (else the client must send it).
func dialWS(ctx context.Context, hc *http.Client, rawURL string, first []byte) (_ *wsConn, taken bool, _ error) {
	conn, resp, err := upgradeWS(ctx, hc, rawURL, first)
	if err != nil {
		return nil, false, err
	}
	return conn, first != nil && resp.Header.Get("Sec-WebSocket-Protocol") == protocol.ConnectedSubprotocol, nil
}

// upgradeWS is dialWS's upgrade; it returns the server's 101 too.
func upgradeWS(ctx context.Context, hc *http.Client, rawURL string, first []byte) (*wsConn, *http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	case "http", "https":
	default:
		return nil, nil, fmt.Errorf("unsupported URL scheme %q (want ws, wss, http or https)", u.Scheme)
	}
	if hc.Timeout > 0 {
		// http.Client's timeout would wrap the body, which must stay the
		// connection; ctx bounds the upgrade instead.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, hc.Timeout)
		defer cancel()
		h := *hc
		h.Timeout = 0
		hc = &h
	}
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header = http.Header{
		"Upgrade":                {"websocket"},
		"Connection":             {"Upgrade"},
		"Sec-Websocket-Key":      {key},
		"Sec-Websocket-Version":  {"13"},
		"Sec-Websocket-Protocol": {subprotocol},
	}
	if first != nil {
		req.Header["Sec-Websocket-Protocol"] = []string{protocol.ConnectedSubprotocol + ", " + subprotocol + ", " + protocol.ConnectSubprotocol(first)}
	}
	var resp *http.Response
	if u, ok := hc.Transport.(*upgrader); ok && hc.Jar == nil {
		// The client's own upgrade: http.Client would add only its
		// per-request bookkeeping (no cookie jar; a gateway answers an
		// upgrade itself, so a redirect is a refusal like any other).
		resp, err = u.RoundTrip(req)
	} else {
		resp, err = hc.Do(req)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := checkUpgrade(resp, key, first != nil); err != nil {
		resp.Body.Close()
		return nil, nil, err
	}
	if uc, ok := resp.Body.(*upgradedConn); ok {
		// The client's own upgrade (upgrade.go): the socket itself, and
		// what the response's reader read past the header.
		buffered, _ := uc.br.Peek(uc.br.Buffered())
		return newWSConn(uc.Conn, uc.Conn, buffered), resp, nil
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, nil, fmt.Errorf("the upgrade's response body is a %T, not the connection", resp.Body)
	}
	return newWSConn(rwc, nil, nil), resp, nil
}

// checkUpgrade checks the server's answer to the upgrade (connect: the
// connect subprotocols were offered too).
func checkUpgrade(resp *http.Response, key string, connect bool) error {
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		msg := strings.TrimSpace(string(body))
		if msg != "" {
			msg = ": " + msg
		}
		return fmt.Errorf("WebSocket upgrade refused: %s%s", resp.Status, msg)
	}
	switch {
	case !httpguts.HeaderValuesContainsToken(resp.Header.Values("Upgrade"), "websocket"):
		return fmt.Errorf("WebSocket upgrade: bad Upgrade header %q", resp.Header.Get("Upgrade"))
	case !httpguts.HeaderValuesContainsToken(resp.Header.Values("Connection"), "upgrade"):
		return fmt.Errorf("WebSocket upgrade: bad Connection header %q", resp.Header.Get("Connection"))
	case resp.Header.Get("Sec-WebSocket-Accept") != acceptKeyFor(key):
		return fmt.Errorf("WebSocket upgrade: Sec-WebSocket-Accept %q does not answer the key", resp.Header.Get("Sec-WebSocket-Accept"))
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		return fmt.Errorf("WebSocket upgrade: extensions %q were not asked for", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" && p != subprotocol && (!connect || p != protocol.ConnectedSubprotocol) {
		return fmt.Errorf("WebSocket upgrade: subprotocol %q, asked for %s", p, subprotocol)
	}
	return nil
}

// acceptKeyFor is the Sec-WebSocket-Accept that answers key.
func acceptKeyFor(key string) string {
	h := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}
