package gateway

import (
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-chat/switchboard/protocol"
)

// BenchmarkFanOutQueue is the gateway's own work per delivery, without
// the socket: an event framed once (frameCache), queued on 1,000
// sessions, and each session's queue taken by a writer. It allocates
// nothing per delivery once the queues have their capacity.
func BenchmarkFanOutQueue(b *testing.B) {
	g := &Gateway{cfg: Config{Metrics: &Metrics{}}}
	g.cfg.withDefaults()
	sessions := make([]*session, 1000)
	for i := range sessions {
		sessions[i] = &session{g: g, out: newOutbox(g.cfg.QueueFrames, g.cfg.QueueBytes)}
	}
	var cache frameCache
	frame := []byte(`{"event":"message.new","channel":"live","seq":1,"data":{"message":{"id":"1-a","segment":1,"user":"u","text":"hello","created_at":"2026-12-06T00:00:00.000Z"}}}`)
	batch := make([][]byte, 0, maxIov)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		msg := cache.message(frame)
		for _, s := range sessions {
			s.queue(msg)
		}
		for _, s := range sessions {
			batch, _, _ = s.out.take(batch[:0], g.cfg.MaxWriteBytes, maxIov)
			s.out.take(batch[:0], g.cfg.MaxWriteBytes, maxIov) // finds it idle again
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(sessions)), "ns/delivery")
}

// BenchmarkThrottle is what --session-rate adds to every request of a
// session under its rate: one AllowN.
func BenchmarkThrottle(b *testing.B) {
	s := &session{requests: rate.NewLimiter(1e9, 1<<30)} // never refuses
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if perr := s.throttle(protocol.OpMessageSend, now); perr != nil {
			b.Fatal(perr)
		}
	}
}
