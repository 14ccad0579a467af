package actors

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// slowLog is a persistence.Log whose callbacks arrive only when the test
// says, each with the error the test chooses. Like every Log it completes
// a scope's entries in the order appended. Reads are not used here.
type slowLog struct {
	persistence.Log
	n      int // entries appended
	writes []func(error)
}

func (l *slowLog) Append(e *persistence.Entry, done func(error)) {
	l.n++
	l.writes = append(l.writes, done)
}

// ack completes the oldest entry still pending.
func (l *slowLog) ack(err error) {
	done := l.writes[0]
	l.writes = l.writes[1:]
	done(err)
}

// pipelineRig drives a pipeline as its actor does: the log's and the
// confirmations' callbacks land in a mailbox, and deliver hands them over
// as the actor's Receive would, stopping the pipeline on a failure.
type pipelineRig struct {
	t        *testing.T
	p        pipeline
	log      *slowLog
	confirms []func(error) // leadership confirmations asked, oldest first
	mailbox  []any
	out      []string // what the outputs did, in order
}

func newPipelineRig(t *testing.T) *pipelineRig {
	r := &pipelineRig{t: t, log: &slowLog{}}
	r.p.start(func(m any) { r.mailbox = append(r.mailbox, m) }, r.log, func(done func(error)) { r.confirms = append(r.confirms, done) })
	return r
}

// write is a command that appended an entry (index counts from 1).
func (r *pipelineRig) write(name string, index uint64) {
	r.p.append(&persistence.Entry{}, index)
	r.output(name, index)
}

// output queues a command's output waiting for entry index (0: none, a
// read).
func (r *pipelineRig) output(name string, index uint64) {
	r.p.push(queued{
		index: index,
		send:  func() { r.out = append(r.out, name) },
		fail:  func(e *protocol.Error) { r.out = append(r.out, name+" failed: "+e.Message) },
	})
}

// confirm answers the oldest confirmation asked.
func (r *pipelineRig) confirm(err error) {
	r.t.Helper()
	if len(r.confirms) == 0 {
		r.t.Fatal("no confirmation was asked")
	}
	done := r.confirms[0]
	r.confirms = r.confirms[1:]
	done(err)
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
		case *confirmedReads:
			err = r.p.onConfirmed(m)
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

// TestPipelineReleasesNothingBeforeItsEntryCommits: each output waits for
// its own entry and for every output queued before it — a read that
// follows a write waits for the write.
func TestPipelineReleasesNothingBeforeItsEntryCommits(t *testing.T) {
	r := newPipelineRig(t)
	r.write("send 1", 1)
	r.output("history", 0)
	r.write("send 2", 2)
	r.took()
	r.confirm(nil)
	r.deliver()
	r.took() // the read waits for send 1
	r.log.ack(nil)
	r.deliver()
	r.took("send 1", "history")
	r.log.ack(nil)
	r.deliver()
	r.took("send 2")
}

func TestPipelineOutputsLeaveInOrderWhenAcksArriveLate(t *testing.T) {
	r := newPipelineRig(t)
	for i := uint64(1); i <= 5; i++ {
		r.write(fmt.Sprint("send ", i), i)
	}
	for range 5 {
		r.log.ack(nil)
	}
	r.took()
	r.deliver()
	r.took("send 1", "send 2", "send 3", "send 4", "send 5")
}

// TestPipelineReadsWaitForAConfirmationAskedAfterThem: a read leaves only
// once a leadership confirmation asked after it was queued has answered;
// reads queued while one is in flight wait for the next, which covers all
// of them.
func TestPipelineReadsWaitForAConfirmationAskedAfterThem(t *testing.T) {
	r := newPipelineRig(t)
	r.output("get 1", 0)
	r.output("get 2", 0) // queued while the first confirmation is in flight
	r.output("get 3", 0)
	if len(r.confirms) != 1 {
		t.Fatalf("%d confirmations in flight, want one", len(r.confirms))
	}
	r.confirm(nil)
	r.deliver()
	r.took("get 1")
	if len(r.confirms) != 1 {
		t.Fatal("the reads queued meanwhile did not get a confirmation")
	}
	r.confirm(nil)
	r.deliver()
	r.took("get 2", "get 3")
	if len(r.confirms) != 0 {
		t.Fatal("a confirmation asked with nothing waiting")
	}
}

// TestPipelineFailedConfirmationAnswersEverything: a node that cannot
// confirm its leadership (deposed while paused) serves nothing queued.
func TestPipelineFailedConfirmationAnswersEverything(t *testing.T) {
	r := newPipelineRig(t)
	r.output("get", 0)
	r.write("send", 1)
	r.log.ack(nil)
	r.confirm(shard.ErrLost)
	r.deliver()
	r.took("get failed: channel c is changing leader; retry", "send failed: channel c is changing leader; retry")
}

func TestPipelineFailureAnswersEverythingQueued(t *testing.T) {
	r := newPipelineRig(t)
	r.write("send 1", 1)
	r.write("send 2", 2)
	r.output("history", 0)
	r.log.ack(errors.New("disk on fire"))
	r.deliver()
	r.took("send 1 failed: channel c: storage failed; retry", "send 2 failed: channel c: storage failed; retry",
		"history failed: channel c: storage failed; retry")
	// A late acknowledgement of an entry behind the failure releases
	// nothing.
	r.log.ack(nil)
	r.confirm(nil)
	r.deliver()
	r.took()
}

func TestPipelineNotLeaderMeansRetry(t *testing.T) {
	r := newPipelineRig(t)
	r.write("send", 1)
	r.log.ack(&shard.NotLeaderError{Shard: 3, Leader: "n2"})
	r.deliver()
	if len(r.out) != 1 {
		t.Fatalf("outputs %q", r.out)
	}
	e := storageError("channel c", &shard.NotLeaderError{})
	if e.Code != protocol.CodeUnavailable || e.RetryAfterMS == 0 {
		t.Fatalf("a lost leadership answers %+v, want unavailable with a delay", e)
	}
}
