package loadtest

import (
	"math"
	"math/rand/v2"
	"time"
)

// Op kinds a schedule holds.
const (
	KindSend     = 0 // message.send
	KindHistory  = 1 // messages.history (soak)
	KindReaction = 2 // reaction.add (liveroom)
)

// Step is one scheduled operation.
type Step struct {
	// Index is the step's position in the schedule, from 0.
	Index uint64
	// At is the intended time, from the start of sending (warmup
	// included).
	At      time.Duration
	Kind    int
	Channel int // channel index in the layout
	// Session is the session index: one of the channel's senders, or for
	// a reaction any of its members.
	Session int
}

// Schedule is a deterministic open-loop schedule: Poisson arrivals at a
// fixed rate, each assigned to a channel and a sending session, all drawn
// from one seeded generator. The same seed, layout and shares give the
// same steps; a share of 0 draws nothing, so adding a kind of step left
// at 0 does not change existing schedules.
type Schedule struct {
	rng    *rand.Rand
	layout *Layout
	rate   float64
	length time.Duration
	shares Shares
	at     float64 // seconds
	index  uint64
}

// Shares are the parts of a schedule's operations that are not sends.
type Shares struct {
	History  float64 // messages.history
	Reaction float64 // reaction.add
}

// NewSchedule returns the schedule of a run of the given length.
func NewSchedule(seed uint64, rate float64, length time.Duration, l *Layout, shares Shares) *Schedule {
	return &Schedule{
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		layout: l,
		rate:   rate,
		length: length,
		shares: shares,
	}
}

// Next returns the next step, or false when the schedule is over.
func (s *Schedule) Next() (Step, bool) {
	if s.rate <= 0 {
		return Step{}, false
	}
	// Exponential inter-arrival times make a Poisson process.
	s.at += -math.Log(1-s.rng.Float64()) / s.rate
	at := time.Duration(s.at * float64(time.Second))
	if at >= s.length {
		return Step{}, false
	}
	st := Step{Index: s.index, At: at}
	s.index++
	st.Channel, st.Session = s.layout.pick(s.rng)
	if s.shares.History > 0 && s.rng.Float64() < s.shares.History {
		st.Kind = KindHistory
	}
	if st.Kind == KindSend && s.shares.Reaction > 0 && s.rng.Float64() < s.shares.Reaction {
		st.Kind = KindReaction
		m := s.layout.Members[st.Channel]
		st.Session = m[s.rng.IntN(len(m))]
	}
	return st, true
}
