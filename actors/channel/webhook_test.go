package channel

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

func hooked(c *Config) { c.Webhooks = true }

type hookEvent struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Seq     uint64          `json:"seq"`
	Data    json.RawMessage `json:"data"`
	At      protocol.Time   `json:"at"`
}

func (h *harness) fetch(maxEvents int) (WebhookBatch, []hookEvent) {
	h.t.Helper()
	b := ok[WebhookBatch](h, Caller{}, OpWebhookFetch, WebhookFetchArgs{MaxEvents: maxEvents})
	evs := make([]hookEvent, len(b.Events))
	for i, raw := range b.Events {
		if err := json.Unmarshal(raw, &evs[i]); err != nil {
			h.t.Fatalf("event %s: %v", raw, err)
		}
	}
	return b, evs
}

// A new channel's events are delivered from the first; the position moves
// only when acknowledged and survives a restart; each event has its time.
func TestWebhookPositionIsAcknowledgedAndDurable(t *testing.T) {
	h := newHarness(t, hooked)
	h.create("ann", protocol.TypeStandard, nil)
	h.tick(time.Minute)
	h.send("ann", "1", "one")
	h.send("ann", "2", "two")
	b, evs := h.fetch(2)
	if b.Delivered != 0 || b.LastSeq != 2 || len(evs) != 2 || evs[0].Seq != 1 || evs[1].Seq != 2 {
		t.Fatalf("batch %+v %+v", b, evs)
	}
	if evs[0].Event != protocol.EventMessageNew || !evs[0].At.Equal(t0.Add(time.Minute)) || evs[0].Channel != channelID {
		t.Errorf("event %+v", evs[0])
	}
	// Fetching again without an ack gives the same events.
	if _, again := h.fetch(10); len(again) != 2 || again[0].Seq != 1 {
		t.Fatalf("refetch %+v", again)
	}
	ok[struct{}](h, Caller{}, OpWebhookAck, WebhookAckArgs{Seq: 1})
	h.reload() // events now come from the store, not memory
	b, evs = h.fetch(10)
	if b.Delivered != 1 || len(evs) != 1 || evs[0].Seq != 2 || !evs[0].At.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after ack and restart: %+v %+v", b, evs)
	}
	last, delivered, pending, err := WebhookBacklogOf(h.log)
	if err != nil || last != 2 || delivered != 1 || !pending {
		t.Errorf("backlog of the store: %d %d %v %v", last, delivered, pending, err)
	}
	ok[struct{}](h, Caller{}, OpWebhookAck, WebhookAckArgs{Seq: 99}) // past the last: the last
	if _, _, pending := h.s.WebhookBacklog(); pending {
		t.Error("backlog after acknowledging everything")
	}
}

// Events trimmed by retention before delivery are reported as a gap.
func TestWebhookGapWhenRetentionTrimmed(t *testing.T) {
	h := newHarness(t, hooked, func(c *Config) { c.EventRetention, c.RecentEvents = 10, 2 })
	h.create("ann", protocol.TypeStandard, nil)
	for i := 0; i < 30; i++ {
		h.send("ann", fmt.Sprint(i), "x")
	}
	h.reload()
	b, evs := h.fetch(100)
	if b.GapFrom != 1 || b.GapTo != h.s.meta.FirstSeq-1 || len(evs) == 0 || evs[0].Seq != h.s.meta.FirstSeq || evs[len(evs)-1].Seq != 30 {
		t.Fatalf("batch gap %d..%d, events %d from %d", b.GapFrom, b.GapTo, len(evs), evs[0].Seq)
	}
}

// A channel that existed before webhooks were on starts at its newest
// event; stored event records without a time read back with none.
func TestWebhookStartsWhereWebhooksWereTurnedOn(t *testing.T) {
	h := newHarness(t)
	h.create("ann", protocol.TypeStandard, nil)
	h.send("ann", "1", "before")
	// A record of the former shape: the bare frame.
	frame := protocol.AppendEvent(nil, protocol.EventMessageNew, channelID, 3, []byte(`{}`))
	e := &persistence.Entry{}
	e.Put(persistence.TableEvent, persistence.U64(3), frame)
	h.apply(e)
	if f, at := splitEventRecord(frame); string(f) != string(frame) || !at.IsZero() {
		t.Errorf("bare frame read as %s at %v", f, at)
	}
	h.cfg.Webhooks = true
	h.reload()
	if _, _, pending := h.s.WebhookBacklog(); pending {
		t.Fatal("events from before webhooks are pending")
	}
	h.send("ann", "2", "after")
	b, evs := h.fetch(10)
	if len(evs) != 1 || evs[0].Seq != b.LastSeq {
		t.Fatalf("after turning webhooks on: %+v", evs)
	}
}

// TestWebhookMessagesAreWhole: a webhook gets a message event's message
// with every field (its channel and type included), which the WebSocket
// event leaves out when empty; the rest of the event's data stays, after
// it. So from memory as from the store.
func TestWebhookMessagesAreWhole(t *testing.T) {
	h := newHarness(t, hooked)
	h.create("ann", protocol.TypeStandard, nil)
	m := h.send("ann", "1", "one")
	ok[messageResult](h, caller("ann"), protocol.OpReactionAdd, map[string]any{"channel": channelID, "message_id": m.ID, "name": "eyes"})
	check := func(when string) {
		t.Helper()
		_, evs := h.fetch(10)
		var seen int
		for _, ev := range evs {
			if ev.Event != protocol.EventMessageNew && ev.Event != protocol.EventReactionUpdated {
				continue
			}
			seen++
			var d map[string]json.RawMessage
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			var msg map[string]json.RawMessage
			if err := json.Unmarshal(d["message"], &msg); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"channel", "type", "tags", "mentions", "attachments", "reactions", "parent_id", "reply_count", "edited_at", "deleted", "system", "data", "metadata"} {
				if _, ok := msg[k]; !ok {
					t.Fatalf("%s: %s's message has no %s: %s", when, ev.Event, k, d["message"])
				}
			}
			if string(msg["channel"]) != `"`+channelID+`"` || string(msg["type"]) != `"text"` {
				t.Fatalf("%s: message %s", when, d["message"])
			}
			if ev.Event == protocol.EventReactionUpdated && (string(d["name"]) != `"eyes"` || string(d["user"]) != `"ann"`) {
				t.Fatalf("%s: reaction data %s", when, ev.Data)
			}
		}
		if seen != 2 {
			t.Fatalf("%s: %d message events", when, seen)
		}
	}
	check("from memory")
	h.reload()
	check("from the store")
}
