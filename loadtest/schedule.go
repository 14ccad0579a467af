package loadtest

import (
	"math"
	"math/rand/v2"
	"time"
)

// Op kinds a schedule holds.
const (
	KindSend    = 0 // message.send
	KindHistory = 1 // messages.history (soak)
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
	Session int // session index
}

// Schedule is a deterministic open-loop schedule: Poisson arrivals at a
// fixed rate, each assigned to a channel and a sending session, all drawn
// from one seeded generator. The same seed and layout give the same steps.
type Schedule struct {
	rng          *rand.Rand
	layout       *Layout
	rate         float64
	length       time.Duration
	historyShare float64
	at           float64 // seconds
	index        uint64
}

// NewSchedule returns the schedule of a run of the given length.
func NewSchedule(seed uint64, rate float64, length time.Duration, l *Layout, historyShare float64) *Schedule {
	return &Schedule{
		rng:          rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		layout:       l,
		rate:         rate,
		length:       length,
		historyShare: historyShare,
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
	if s.historyShare > 0 && s.rng.Float64() < s.historyShare {
		st.Kind = KindHistory
	}
	return st, true
}
