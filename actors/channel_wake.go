package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// A channel's time-driven changes (typing that lapses, typing changes held
// back by coalescing) happen when the channel is told time has passed. The
// actor keeps one timer for that, armed for the state's NextWake and
// re-armed after every command; a channel nobody types in has none. This
// bounds timers to one per active channel, whatever its number of typists.

// channelWake is posted by the wake timer.
type channelWake struct{}

// arm sets the timer for the state's next wake, unless one sooner is set.
func (a *channelActor) arm(ctx actor.Context) {
	if a.state != nil {
		at, ok := a.state.NextWake()
		a.wake.arm(a.post, at, ok, a.d.Clock(), channelWake{})
	}
}

// onWake tells the state time has passed; handle re-arms the timer.
func (a *channelActor) onWake(ctx actor.Context) {
	a.wake.fired()
	if a.state == nil || !a.usable() {
		return
	}
	a.handle(ctx, &clusterpb.Request{Op: channel.OpTick})
}
