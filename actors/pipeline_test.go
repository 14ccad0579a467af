package actors

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// slowLog is a persistence.Log whose callbacks arrive only when the test
// says, each with the error the test chooses. Like every Log it completes
// a scope's entries in the order appended. Reads are not used here.
type slowLog struct {
	persistence.Log
	calls  []string // "fence 3", "append 1", in call order
	n      int      // entries appended
	fences []func(error)
	writes []func(error)
}

func (l *slowLog) Fence(epoch uint64, done func(error)) {
	l.calls = append(l.calls, fmt.Sprintf("fence %d", epoch))
	l.fences = append(l.fences, done)
}

func (l *slowLog) Append(e *persistence.Entry, done func(error)) {
	l.n++
	l.calls = append(l.calls, fmt.Sprintf("append %d", l.n))
	l.writes = append(l.writes, done)
}

// fence completes the oldest fence still pending.
func (l *slowLog) fence(err error) {
	done := l.fences[0]
	l.fences = l.fences[1:]
	done(err)
}

// ack completes the oldest entry still pending.
func (l *slowLog) ack(err error) {
	done := l.writes[0]
	l.writes = l.writes[1:]
	done(err)
}

// pipelineRig drives a pipeline as its actor does: the log's callbacks
// land in a mailbox, and deliver hands them over as the actor's Receive
// would, stopping the pipeline on a failure.
type pipelineRig struct {
	t       *testing.T
	p       pipeline
	log     *slowLog
	mailbox []any
	out     []string // what the outputs did, in order
	stopped bool     // stopNow arrived
}

func newPipelineRig(t *testing.T, exists bool) *pipelineRig {
	r := &pipelineRig{t: t, log: &slowLog{}}
	r.p.start(func(m any) { r.mailbox = append(r.mailbox, m) }, r.log, 7, exists)
	return r
}

// write is a command that appended an entry (index counts from 1).
func (r *pipelineRig) write(name string, index uint64) {
	r.p.append(&persistence.Entry{Epoch: 7}, index)
	r.output(name, index)
}

// output queues a command's output waiting for entry index (0: none).
func (r *pipelineRig) output(name string, index uint64) {
	r.p.push(queued{
		index: index,
		send:  func() { r.out = append(r.out, name) },
		fail:  func(e *protocol.Error) { r.out = append(r.out, name+" failed: "+e.Message) },
	})
}

// deliver hands the actor every message posted so far.
func (r *pipelineRig) deliver() {
	for len(r.mailbox) > 0 {
		m := r.mailbox[0]
		r.mailbox = r.mailbox[1:]
		var err error
		switch m := m.(type) {
		case *committed:
			err = r.p.onCommitted(m)
		case *fenced:
			err = r.p.onFenced(m)
		case stopNow:
			r.stopped = true
		default:
			r.t.Fatalf("unexpected message %T", m)
		}
		if err != nil {
			r.p.fail(storageError("channel c", err))
		}
	}
}

// took checks what the outputs did since the last check.
func (r *pipelineRig) took(want ...string) {
	r.t.Helper()
	if !slices.Equal(r.out, want) {
		r.t.Fatalf("outputs %q, want %q", r.out, want)
	}
	r.out = nil
}

// TestPipelineReleasesNothingBeforeItsEntryIsDurable: outputs wait for the
// activation's fence, then each for its own entry and for every output
// queued before it — a read that follows a write waits for the write.
func TestPipelineReleasesNothingBeforeItsEntryIsDurable(t *testing.T) {
	r := newPipelineRig(t, true)
	r.output("read0", 0)
	r.took()
	r.log.fence(nil)
	r.took() // posted, not yet received
	r.deliver()
	r.took("read0")

	r.write("w1", 1)
	r.output("read1", 0)
	r.deliver()
	r.took()
	r.log.ack(nil)
	r.took()
	r.deliver()
	r.took("w1", "read1")
	if got := strings.Join(r.log.calls, ", "); got != "fence 7, append 1" {
		t.Errorf("log calls %s", got)
	}
}

// TestPipelineOutputsLeaveInOrderWhenAcksArriveLate: acknowledgements
// that come long after their commands, several at once, release each
// output exactly when everything before it may go.
func TestPipelineOutputsLeaveInOrderWhenAcksArriveLate(t *testing.T) {
	r := newPipelineRig(t, false)
	r.write("w1", 1)
	r.output("r1", 0)
	r.write("w2", 2)
	r.write("w3", 3)
	r.output("r2", 0)
	r.took()
	r.log.ack(nil)
	r.log.ack(nil)
	r.deliver()
	r.took("w1", "r1", "w2")
	r.write("w4", 4)
	r.log.ack(nil)
	r.deliver()
	r.took("w3", "r2")
	r.log.ack(nil)
	r.deliver()
	r.took("w4")
	if !r.p.idle() {
		t.Error("the pipeline is not idle")
	}
	// The lazy fence went just before the first entry, and was not
	// reported: the entry's own acknowledgement covers it.
	if got := strings.Join(r.log.calls, ", "); got != "fence 7, append 1, append 2, append 3, append 4" {
		t.Errorf("log calls %s", got)
	}
}

// TestPipelineFailureAnswersEverythingQueued: a failed entry answers every
// queued output, before and after it, with the error, and an
// acknowledgement that arrives afterwards releases nothing.
func TestPipelineFailureAnswersEverythingQueued(t *testing.T) {
	r := newPipelineRig(t, false)
	r.write("w1", 1)
	r.write("w2", 2)
	r.output("r", 0)
	r.write("w3", 3)
	r.log.ack(nil)
	r.log.ack(errors.New("disk gone"))
	r.log.ack(nil) // late: the log got it before the failure
	r.deliver()
	fail := " failed: channel c: storage failed; retry"
	r.took("w1", "w2"+fail, "r"+fail, "w3"+fail)
	r.p.fail(protocol.Errorf(protocol.CodeInternal, "again"))
	r.took()
}

// TestPipelineFencedEntryMeansMoved: an entry refused because another
// activation fenced the scope answers unavailable: moved, retry.
func TestPipelineFencedEntryMeansMoved(t *testing.T) {
	r := newPipelineRig(t, false)
	r.write("w1", 1)
	r.log.ack(persistence.ErrFenced)
	r.deliver()
	r.took("w1 failed: channel c moved to another activation; retry")
}

// TestPipelineRefusedFenceFailsTheActivation: a fence refused at start
// (another activation holds a newer epoch) answers what waits behind it,
// and an entry acknowledged meanwhile releases nothing.
func TestPipelineRefusedFenceFailsTheActivation(t *testing.T) {
	r := newPipelineRig(t, true)
	r.write("w1", 1)
	r.output("r1", 0)
	r.log.ack(nil)
	r.log.fence(persistence.ErrFenced)
	r.deliver()
	r.took("w1 failed: channel c moved to another activation; retry", "r1 failed: channel c moved to another activation; retry")
}

// TestPipelineRefusedLazyFenceFailsTheActivation: the fence written before
// a new scope's first entry is refused; what waits is answered.
func TestPipelineRefusedLazyFenceFailsTheActivation(t *testing.T) {
	r := newPipelineRig(t, false)
	r.output("r0", 0)
	r.took("r0") // nothing written yet: nothing to wait for
	r.write("w1", 1)
	r.log.fence(persistence.ErrFenced)
	r.log.ack(persistence.ErrFenced)
	r.deliver()
	r.took("w1 failed: channel c moved to another activation; retry")
}

// TestPipelineHandOverWaitsForWhatIsQueued: the scope is released only
// once every queued output has gone, and the actor is told to stop after
// the outcome is reported.
func TestPipelineHandOverWaitsForWhatIsQueued(t *testing.T) {
	r := newPipelineRig(t, false)
	r.write("w1", 1)
	var events []string
	release := func(done func(uint64, error)) {
		events = append(events, "release")
		done(8, nil)
	}
	r.p.handOver(release, func(epoch uint64, err error) { events = append(events, fmt.Sprintf("released at %d, %v", epoch, err)) })
	if len(events) != 0 || r.stopped {
		t.Fatalf("released before the queue drained: %q", events)
	}
	r.log.ack(nil)
	r.deliver()
	r.took("w1")
	if !slices.Equal(events, []string{"release", "released at 8, <nil>"}) || !r.stopped {
		t.Fatalf("events %q, stopped %v", events, r.stopped)
	}
}

// TestPipelineHandOverOfAnIdleActivation: nothing queued, the fence not
// yet durable: the scope is released at once (the store orders the
// release behind the fence).
func TestPipelineHandOverOfAnIdleActivation(t *testing.T) {
	r := newPipelineRig(t, true)
	released := false
	r.p.handOver(func(done func(uint64, error)) { released = true; done(8, nil) }, func(uint64, error) {})
	r.deliver()
	if !released || !r.stopped {
		t.Fatalf("released %v, stopped %v", released, r.stopped)
	}
}
