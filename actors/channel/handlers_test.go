package channel

import (
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Every op the table routes to a channel has a handler here, and no op
// routed elsewhere has one.
func TestEveryChannelOpHasAHandler(t *testing.T) {
	for _, op := range protocol.Ops() {
		if got, want := Handles(op.Name), op.Route == protocol.RouteChannel; got != want {
			t.Errorf("op %s (routed to %s): channel handles it = %v", op.Name, op.Route, got)
		}
	}
}
