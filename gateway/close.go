package gateway

import "github.com/coder/websocket"

// closeReason is why the server ends a session; it becomes the WebSocket
// close frame's code and reason text.
type closeReason struct {
	code websocket.StatusCode
	text string
}

// Close codes in the 4000–4999 range are Switchboard's own.
const (
	// CloseSlowConsumer: the client did not read fast enough and its
	// outbound queue filled. Reconnect and resume with since_seq.
	CloseSlowConsumer websocket.StatusCode = 4000
	// CloseReconnect: the node is draining; reconnect (to another gateway)
	// and resume with since_seq.
	CloseReconnect websocket.StatusCode = 4001
	// CloseResync: the session lost a channel's stream and could not get
	// it back; reconnect and resume with since_seq.
	CloseResync websocket.StatusCode = 4002
	// CloseAuthTimeout: no connect arrived in time.
	CloseAuthTimeout websocket.StatusCode = 4003
)

var (
	reasonSlow        = closeReason{CloseSlowConsumer, "slow consumer: outbound queue full"}
	reasonDrain       = closeReason{CloseReconnect, "server draining: reconnect elsewhere"}
	reasonLogout      = closeReason{websocket.StatusNormalClosure, "logout"}
	reasonShutdown    = closeReason{websocket.StatusGoingAway, "server shutting down"}
	reasonPingTimeout = closeReason{websocket.StatusPolicyViolation, "ping timeout"}
	reasonWriteFailed = closeReason{websocket.StatusInternalError, "write failed"}
	reasonAuthTimeout = closeReason{CloseAuthTimeout, "no connect within the auth timeout"}
	reasonResync      = closeReason{CloseResync, "lost a channel stream: reconnect and resume"}
	reasonFull        = closeReason{websocket.StatusTryAgainLater, "server at its session limit"}
)
