package actors

import (
	"time"

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

// minWake keeps a wake that is due at once from spinning.
const minWake = 5 * time.Millisecond

type wakeTimer struct {
	timer *time.Timer
	at    time.Time
}

// arm sets the timer for the state's next wake, unless one sooner is set.
func (a *channelActor) arm(ctx actor.Context) {
	if a.state == nil {
		return
	}
	at, ok := a.state.NextWake()
	if !ok || (a.wake.timer != nil && !a.wake.at.After(at)) {
		return
	}
	a.disarm()
	d := max(at.Sub(a.d.Clock()), minWake)
	self, root := ctx.Self(), ctx.ActorSystem().Root
	a.wake.at = at
	a.wake.timer = time.AfterFunc(d, func() { root.Send(self, channelWake{}) })
}

func (a *channelActor) disarm() {
	if a.wake.timer != nil {
		a.wake.timer.Stop()
		a.wake.timer = nil
	}
}

// onWake tells the state time has passed; handle re-arms the timer.
func (a *channelActor) onWake(ctx actor.Context) {
	a.wake.timer = nil
	if a.state == nil || a.p.dead || a.p.handingOver {
		return
	}
	a.handle(ctx, &clusterpb.Request{Op: channel.OpTick})
}
