package loadtest

import (
	"fmt"
	"math/rand/v2"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Layout is who is where in a run: the channels, the sessions that watch
// each, and the sessions that send to each.
type Layout struct {
	// ChannelIDs and ChannelTypes describe each channel.
	ChannelIDs   []string
	ChannelTypes []string
	// Creator is the session that creates each channel (it is also a
	// member and watcher).
	Creator []int
	// Members are the sessions that join and watch each channel.
	Members [][]int
	// Senders are the sessions that send to each channel.
	Senders [][]int
	// SessionChannels are the channels each session joins.
	SessionChannels [][]int
	// UserIDs are the sessions' users.
	UserIDs []string
}

// layoutFor builds a scenario's layout.
//
//   - chat, storm, soak: Channels standard rooms; session i is a member of
//     room i mod Channels, created by its first member; every member sends.
//   - liveroom: one live channel created by session 0; every session
//     watches it as a viewer; the first Senders sessions send.
func layoutFor(cfg *Config, runID string) *Layout {
	l := &Layout{UserIDs: make([]string, cfg.Sessions), SessionChannels: make([][]int, cfg.Sessions)}
	for i := range l.UserIDs {
		l.UserIDs[i] = fmt.Sprintf("lt-%s-u%d", runID, i)
	}
	switch cfg.Scenario {
	case ScenarioLiveroom:
		l.ChannelIDs = []string{fmt.Sprintf("lt-%s-live", runID)}
		l.ChannelTypes = []string{protocol.TypeLive}
		l.Creator = []int{0}
		members := make([]int, cfg.Sessions)
		for i := range members {
			members[i] = i
			l.SessionChannels[i] = []int{0}
		}
		l.Members = [][]int{members}
		l.Senders = [][]int{members[:min(cfg.Senders, cfg.Sessions)]}
	default:
		n := cfg.Channels
		l.ChannelIDs = make([]string, n)
		l.ChannelTypes = make([]string, n)
		l.Creator = make([]int, n)
		l.Members = make([][]int, n)
		for c := range n {
			l.ChannelIDs[c] = fmt.Sprintf("lt-%s-room%d", runID, c)
			l.ChannelTypes[c] = protocol.TypeStandard
			l.Creator[c] = c
		}
		for i := range cfg.Sessions {
			c := i % n
			l.Members[c] = append(l.Members[c], i)
			l.SessionChannels[i] = []int{c}
		}
		l.Senders = l.Members
	}
	return l
}

// pick draws a channel (uniformly among channels with senders) and one of
// its senders.
func (l *Layout) pick(r *rand.Rand) (channel, session int) {
	channel = r.IntN(len(l.Senders))
	s := l.Senders[channel]
	return channel, s[r.IntN(len(s))]
}
