package user

import (
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// The user's actor answers exactly the ops the table routes to it.
func TestEveryUserOpIsHandled(t *testing.T) {
	for _, op := range protocol.Ops() {
		if got, want := Handles(op.Name), op.Route == protocol.RouteUser; got != want {
			t.Errorf("op %s (routed to %s): user handles it = %v", op.Name, op.Route, got)
		}
	}
}
