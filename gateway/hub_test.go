package gateway

import (
	"encoding/json"
	"testing"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// testSession is a session that only queues frames.
func testSession(g *Gateway, id string) *session {
	return &session{g: g, id: id, out: newOutbox(16, 1<<20), watching: make(map[string]uint64)}
}

// TestRewatchedTellsRefusedSessions: after a channel moved, a session its
// new activation would not take back stops watching and gets
// channel.unwatched with the reason; a session taken back gets the
// replayed events after its own position and keeps watching.
func TestRewatchedTellsRefusedSessions(t *testing.T) {
	g := &Gateway{cfg: Config{Metrics: &Metrics{}}}
	h := newHub(g)
	h.owners["room"] = ownerRef{node: "n1"} // as the first watch recorded it
	kept, refused := testSession(g, "kept"), testSession(g, "refused")
	for _, s := range []*session{kept, refused} {
		h.watch(s, "room", 3)
	}
	frame := func(seq uint64) json.RawMessage {
		f, _ := protocol.EncodeEvent(protocol.EventMessageNew, "room", seq, map[string]any{})
		return f
	}
	res, _ := json.Marshal(channel.RewatchResult{
		Accepted: []string{"kept"},
		Refused:  []channel.RefusedSession{{Session: "refused", Error: protocol.Errorf(protocol.CodeBanned, "banned")}},
		Seq:      5,
		Events:   []json.RawMessage{frame(3), frame(4), frame(5)},
	})
	h.rewatching["room"], h.pending["room"] = true, 1
	h.rewatched("room", []*session{kept, refused}, 0, &clusterpb.Reply{Result: res})

	if _, ok := refused.watching["room"]; ok {
		t.Error("the refused session still watches")
	}
	if _, ok := h.channels["room"][refused]; ok {
		t.Error("the hub still fans out to the refused session")
	}
	got, closed, _ := refused.out.take(nil)
	if closed || len(got) != 1 {
		t.Fatalf("refused session: %d frames, closed %v; want one channel.unwatched", len(got), closed)
	}
	var ev struct {
		Event   string                 `json:"event"`
		Channel string                 `json:"channel"`
		Seq     uint64                 `json:"seq"`
		Data    protocol.UnwatchedData `json:"data"`
	}
	if err := json.Unmarshal(got[0], &ev); err != nil || ev.Event != protocol.EventChannelUnwatched || ev.Channel != "room" ||
		ev.Seq != 0 || ev.Data.Error == nil || ev.Data.Error.Code != protocol.CodeBanned {
		t.Errorf("refused session got %s", got[0])
	}

	if kept.watching["room"] != 5 {
		t.Errorf("kept session at seq %d, want 5", kept.watching["room"])
	}
	got, closed, _ = kept.out.take(nil)
	if closed || len(got) != 2 || string(got[0]) != string(frame(4)) || string(got[1]) != string(frame(5)) {
		t.Errorf("kept session got %d frames (closed %v), want seqs 4 and 5", len(got), closed)
	}
}
