package gateway

import (
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Every op of the table has a handler where the table routes it: the
// session's own, the gateway's gathering ones; ops routed to actors are
// checked by their packages (channel.Handles, user.Handles).
func TestEveryOpHasAHandler(t *testing.T) {
	s := &session{}
	for _, op := range protocol.Ops() {
		switch op.Route {
		case protocol.RouteSession:
			if s.sessionOp(op.Name) == nil {
				t.Errorf("session op %s has no handler", op.Name)
			}
		case protocol.RouteGateway:
			if gatherOp(op.Name) == nil {
				t.Errorf("gateway op %s has no handler", op.Name)
			}
		}
		if op.Route != protocol.RouteGateway && gatherOp(op.Name) != nil {
			t.Errorf("op %s is routed to %s but the gateway gathers it", op.Name, op.Route)
		}
		if op.Route != protocol.RouteSession && s.sessionOp(op.Name) != nil {
			t.Errorf("op %s is routed to %s but the session answers it", op.Name, op.Route)
		}
	}
}
