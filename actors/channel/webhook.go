package channel

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Webhooks (SERVER-API.md "Webhooks") deliver a channel's persisted
// events, in seq order, at least once. The channel keeps the position its
// receiver acknowledged in its own counters (metaRecord.HookSeq), so that
// whoever serves the channel next — after a restart, a move or a failover
// — continues from there. The node's deliverer asks the channel for the
// events after that position (OpWebhookFetch) and, once the receiver has
// them, moves it (OpWebhookAck). The channel only answers: it never waits
// on the receiver. Events are read from the event table, so the backlog is
// bounded by the channel's event retention: events trimmed before they
// were delivered are reported as a gap.

// Internal ops of webhook delivery (never accepted from clients).
const (
	OpWebhookFetch = "_webhook.fetch"
	OpWebhookAck   = "_webhook.ack"
	// OpWebhookWake activates a channel that has events to deliver.
	OpWebhookWake = "_webhook.wake"
)

// WebhookFetchArgs bound one batch.
type WebhookFetchArgs struct {
	MaxEvents int `json:"max_events,omitempty"` // 0: 100
	MaxBytes  int `json:"max_bytes,omitempty"`  // 0: 256 KiB (at least one event)
}

// WebhookBatch answers OpWebhookFetch: the events after the acknowledged
// position, each as a webhook delivers it ({event, channel, seq, data,
// at}), in seq order.
type WebhookBatch struct {
	// Delivered is the acknowledged position, LastSeq the channel's
	// newest event.
	Delivered uint64 `json:"delivered"`
	LastSeq   uint64 `json:"last_seq"`
	// GapFrom..GapTo are events after Delivered that retention trimmed
	// before they were delivered (0: none).
	GapFrom uint64            `json:"gap_from,omitempty"`
	GapTo   uint64            `json:"gap_to,omitempty"`
	Events  []json.RawMessage `json:"events"`
}

// WebhookAckArgs move the acknowledged position to Seq.
type WebhookAckArgs struct {
	Seq uint64 `json:"seq"`
}

// importOrHook reports the internal ops that check the channel's
// existence for themselves.
func importOrHook(op string) bool {
	switch op {
	case OpImportStage, OpImportCommit, OpImportAbort, OpWebhookFetch, OpWebhookAck, OpWebhookWake:
		return true
	}
	return false
}

// WebhookBacklog returns the channel's newest event and the position
// webhooks delivered; ok is false when nothing waits.
func (s *State) WebhookBacklog() (last, delivered uint64, ok bool) {
	if !s.exists || !s.meta.HookSet {
		return 0, 0, false
	}
	return s.meta.LastSeq, s.meta.HookSeq, s.meta.HookSeq < s.meta.LastSeq
}

// WebhookBacklogOf reads the same from a channel's stored counters,
// without loading the channel (a node looks for channels with events to
// deliver when it starts).
func WebhookBacklogOf(r persistence.Reader) (last, delivered uint64, ok bool, err error) {
	v, err := r.Get(persistence.TableMeta, countersKey)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	var m metaRecord
	if err := m.decodeCounters(v); err != nil {
		return 0, 0, false, err
	}
	return m.LastSeq, m.HookSeq, m.HookSet && m.HookSeq < m.LastSeq, nil
}

func (s *State) handleWebhookWake(Caller, json.RawMessage, time.Time) (any, *protocol.Error) {
	return struct{}{}, nil
}

func (s *State) handleWebhookAck(_ Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a WebhookAckArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if !s.exists {
		return struct{}{}, nil
	}
	seq := min(a.Seq, s.meta.LastSeq)
	if !s.meta.HookSet || seq > s.meta.HookSeq {
		s.meta.HookSeq, s.meta.HookSet = seq, true
		s.entry() // the counters record carries it
	}
	return struct{}{}, nil
}

// Bounds of one batch.
const (
	webhookBatchEvents = 100
	webhookBatchBytes  = 256 << 10
)

func (s *State) handleWebhookFetch(_ Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a WebhookFetchArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	maxN, maxB := a.MaxEvents, a.MaxBytes
	if maxN <= 0 {
		maxN = webhookBatchEvents
	}
	if maxB <= 0 {
		maxB = webhookBatchBytes
	}
	b := WebhookBatch{Delivered: s.meta.HookSeq, LastSeq: s.meta.LastSeq, Events: []json.RawMessage{}}
	if !s.exists || s.meta.HookSeq >= s.meta.LastSeq {
		return b, nil
	}
	from := s.meta.HookSeq + 1
	if from < s.meta.FirstSeq {
		b.GapFrom, b.GapTo = from, s.meta.FirstSeq-1
		from = s.meta.FirstSeq
	}
	size := 0
	take := func(frame []byte, at time.Time) bool {
		if len(b.Events) >= maxN || (len(b.Events) > 0 && size+len(frame) > maxB) {
			return false
		}
		ev := webhookEvent(frame, at)
		size += len(ev)
		b.Events = append(b.Events, ev)
		return true
	}
	next := from
	if len(s.recent) == 0 || s.recent[0].Seq > from {
		recs, err := s.log.Scan(persistence.TableEvent, persistence.Range{After: persistence.U64(from - 1), Limit: maxN})
		if err != nil {
			return nil, internal(err)
		}
		for _, r := range recs {
			seq, _ := persistence.ParseU64(r.Key)
			if seq != next {
				break // the rest is in memory
			}
			frame, at := splitEventRecord(r.Value)
			if !take(protocol.Sanitize(frame), at) { // see decodeMessage
				return b, nil
			}
			next++
		}
	}
	for _, ev := range s.recent {
		if ev.Seq == next {
			if !take(ev.Frame, ev.at) {
				break
			}
			next++
		}
	}
	return b, nil
}

// webhookEvent is an event frame as a webhook delivers it: with the time
// it happened ("at") after its data, and a message in it whole
// (wholeMessage).
func webhookEvent(frame []byte, at time.Time) json.RawMessage {
	frame = wholeMessage(frame)
	t, _ := protocol.At(at).MarshalJSON()
	b := make([]byte, 0, len(frame)+len(t)+8)
	b = append(b, frame[:len(frame)-1]...)
	b = append(b, `,"at":`...)
	b = append(b, t...)
	return append(b, '}')
}

// wholeMessage returns a message event's frame with its message in the
// full shape of replies and history (every field, its channel and type
// included): a WebSocket event leaves a message's empty fields out for
// the thousands of watchers it goes to (protocol.AppendEventMessage), but
// a webhook's receiver is one backend, which is sent every field. Any
// other frame, or one that does not read as expected, is returned as it
// is. Message events' data begin with their message (messageEvent,
// reactionData, autoDeleteEvent).
func wholeMessage(frame []byte) []byte {
	rest, ok := bytes.CutPrefix(frame, []byte(`{"event":"`))
	if !ok || !(bytes.HasPrefix(rest, []byte("message.")) || bytes.HasPrefix(rest, []byte(protocol.EventReactionUpdated+`"`))) {
		return frame
	}
	var f struct {
		Event   string          `json:"event"`
		Channel string          `json:"channel"`
		Seq     uint64          `json:"seq"`
		Data    json.RawMessage `json:"data"`
	}
	if json.Unmarshal(frame, &f) != nil {
		return frame
	}
	after, ok := bytes.CutPrefix(f.Data, []byte(`{"message":`))
	if !ok {
		return frame
	}
	dec := json.NewDecoder(bytes.NewReader(after))
	var m protocol.Message
	if dec.Decode(&m) != nil {
		return frame
	}
	if m.Channel == "" {
		m.Channel = f.Channel
	}
	data := make([]byte, 0, len(f.Data)+256)
	data = append(data, `{"message":`...)
	data = protocol.AppendMessage(data, &m)
	data = append(data, after[dec.InputOffset():]...)
	return protocol.AppendEvent(make([]byte, 0, len(data)+len(f.Event)+len(f.Channel)+48), f.Event, f.Channel, f.Seq, data)
}
