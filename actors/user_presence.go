package actors

import (
	"encoding/json"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// A user actor's presence leases lapse with time: like a channel, it keeps
// one timer, armed for the state's NextWake, and tells the state time has
// passed when it fires. It sends presence events once per watching
// gateway, as an Events envelope whose channel is the user's presence
// topic; the gateway fans them out to its watching sessions.

// userWake is posted by the wake timer.
type userWake struct{}

// arm sets the timer for the state's next wake, unless one sooner is set.
func (a *userActor) arm(ctx actor.Context) {
	if a.state != nil {
		at, ok := a.state.NextWake()
		a.wake.arm(a.post, at, ok, a.d.Clock(), userWake{})
	}
}

// internal handles a command the actor gives itself (no reply).
func (a *userActor) internal(ctx actor.Context, op string, args any) {
	if a.state == nil || !a.usable() {
		return
	}
	b, _ := json.Marshal(args)
	a.handle(ctx, &clusterpb.Request{Op: op, Args: b})
}

// sendPresence sends presence frames to the gateways watching the user.
func sendPresence(ctx actor.Context, userID string, gateways []string, frames [][]byte) {
	sendFrames(ctx, user.PresenceTopic(userID), gateways, frames)
}

// sendFrames sends frames to gateways as one Events envelope of topic (a
// user's presence or notice topic), once per gateway.
func sendFrames(ctx actor.Context, topic string, gateways []string, frames [][]byte) {
	if len(frames) == 0 || len(gateways) == 0 {
		return
	}
	evs := make([]*clusterpb.Event, len(frames))
	for i, f := range frames {
		evs[i] = &clusterpb.Event{Frame: f}
	}
	env := clusterpb.Wrap(&clusterpb.Envelope_Events{Events: &clusterpb.Events{Channel: topic, Events: evs}})
	for _, gw := range gateways {
		ctx.Send(cluster.InboxPID(gw), env)
	}
}
