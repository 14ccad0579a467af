package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// deliver takes one batch of a channel through: fetch, post, acknowledge.
func (d *Deliverer) deliver(ch string) outcome {
	if !d.src.Owned(ch) {
		return outcome{ch: ch, drop: true} // its owner's deliverer has it
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.FetchTimeout)
	b, err := d.src.Fetch(ctx, ch)
	cancel()
	if err != nil {
		var perr *protocol.Error
		if errors.As(err, &perr) && perr.Code == protocol.CodeNotFound {
			return outcome{ch: ch, drop: true}
		}
		d.cfg.Logger.Debug("webhook fetch", "channel", ch, "err", err)
		return outcome{ch: ch}
	}
	if len(b.Events) == 0 && b.GapFrom == 0 {
		return outcome{ch: ch, ok: true, delivered: b.Delivered, last: b.LastSeq}
	}
	upto := b.GapTo
	events := make([]json.RawMessage, 0, len(b.Events)+1)
	if b.GapFrom != 0 {
		events = append(events, gapEvent(ch, b.GapFrom, b.GapTo))
	}
	for _, ev := range b.Events {
		name, seq := head(ev)
		upto = max(upto, seq)
		if d.events == nil || d.events[name] {
			events = append(events, ev)
		}
	}
	if len(events) > 0 && !d.post(ch, events) {
		return outcome{ch: ch}
	}
	if b.GapFrom != 0 && d.cfg.Metrics.Gap != nil {
		d.cfg.Metrics.Gap(b.GapTo - b.GapFrom + 1)
	}
	ctx, cancel = context.WithTimeout(d.ctx, d.cfg.FetchTimeout)
	err = d.src.Ack(ctx, ch, upto)
	cancel()
	if err != nil {
		// Delivered but not acknowledged: delivered again (at least once).
		d.cfg.Logger.Debug("webhook ack", "channel", ch, "err", err)
		return outcome{ch: ch}
	}
	return outcome{ch: ch, ok: true, delivered: upto, last: b.LastSeq}
}

// head reads an event's name and seq.
func head(ev json.RawMessage) (string, uint64) {
	var h struct {
		Event string `json:"event"`
		Seq   uint64 `json:"seq"`
	}
	_ = json.Unmarshal(ev, &h)
	return h.Event, h.Seq
}

func gapEvent(ch string, from, to uint64) json.RawMessage {
	b, _ := json.Marshal(struct {
		Event   string        `json:"event"`
		Channel string        `json:"channel"`
		Seq     uint64        `json:"seq"`
		Data    GapData       `json:"data"`
		At      protocol.Time `json:"at"`
	}{GapEvent, ch, from, GapData{FromSeq: from, ToSeq: to, Lost: to - from + 1}, protocol.At(time.Now())})
	return b
}

// Body is a webhook's request body.
type Body struct {
	Events []json.RawMessage `json:"events"`
}

// Sign returns the value of SignatureHeader for body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig (the SignatureHeader) signs body with secret.
func Verify(secret string, body []byte, sig string) bool {
	return hmac.Equal([]byte(sig), []byte(Sign(secret, body)))
}

// post sends one batch and reports whether the receiver took it (2xx).
func (d *Deliverer) post(ch string, events []json.RawMessage) bool {
	body, _ := json.Marshal(Body{Events: events})
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(body))
	if err != nil {
		d.cfg.Logger.Error("webhook request", "err", err)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Switchboard-Webhook/1")
	req.Header.Set(SignatureHeader, Sign(d.cfg.Secret, body))
	start := time.Now()
	resp, err := d.client.Do(req)
	result := "ok"
	switch {
	case err != nil:
		result = "error"
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			result = "timeout"
		}
		d.cfg.Logger.Debug("webhook post", "channel", ch, "err", err)
	default:
		// Read a bounded part of the reply (so the connection can be
		// reused when the reply is short), never more.
		_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, d.cfg.MaxReplyBytes))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			result = "failed"
		case rerr != nil:
			// The reply said 2xx; a reply cut short or slow past the
			// timeout is still no acknowledgement.
			result = "error"
			var ne interface{ Timeout() bool }
			if errors.As(rerr, &ne) && ne.Timeout() {
				result = "timeout"
			}
		}
	}
	if d.cfg.Metrics.Delivery != nil {
		d.cfg.Metrics.Delivery(result, time.Since(start))
	}
	return result == "ok"
}
