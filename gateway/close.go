package gateway

import "github.com/switchboard-chat/switchboard/protocol"

// StatusCode is a WebSocket close frame's status code (RFC 6455 §7.4).
type StatusCode uint16

// closeReason is why the server ends a session; it becomes the WebSocket
// close frame's code and reason text.
type closeReason struct {
	code StatusCode
	text string
}

// Close codes in the 4000–4999 range are Switchboard's own.
const (
	// CloseSlowConsumer: the client did not read fast enough and its
	// outbound queue filled. Reconnect and resume with since_seq.
	CloseSlowConsumer StatusCode = 4000
	// CloseReconnect: the node is draining; reconnect (to another gateway)
	// and resume with since_seq.
	CloseReconnect StatusCode = 4001
	// CloseResync: the session lost a channel's stream and could not get
	// it back; reconnect and resume with since_seq.
	CloseResync StatusCode = 4002
	// CloseAuthTimeout: no connect arrived in time.
	CloseAuthTimeout StatusCode = 4003
)

var (
	reasonSlow        = closeReason{CloseSlowConsumer, "slow consumer: outbound queue full"}
	reasonDrain       = closeReason{CloseReconnect, "server draining: reconnect elsewhere"}
	reasonLogout      = closeReason{protocol.CloseNormalClosure, "logout"}
	reasonShutdown    = closeReason{protocol.CloseGoingAway, "server shutting down"}
	reasonPingTimeout = closeReason{protocol.ClosePolicyViolation, "ping timeout"}
	reasonWriteFailed = closeReason{protocol.CloseInternalError, "write failed"}
	reasonAuthTimeout = closeReason{CloseAuthTimeout, "no connect within the auth timeout"}
	reasonResync      = closeReason{CloseResync, "lost a channel stream: reconnect and resume"}
	reasonFull        = closeReason{protocol.CloseTryAgainLater, "server at its session limit"}
)
