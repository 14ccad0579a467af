package protocol

import (
	"encoding/json"
	"testing"
)

// TestAppendEventMatchesJSON: the hand-built frame is the frame
// encoding/json would produce, for awkward channel ids too.
func TestAppendEventMatchesJSON(t *testing.T) {
	for _, ch := range []string{"general", `quote"and\\back`, "tab\tnl\n", "<a&b>", "\xff", "é", ""} {
		for _, seq := range []uint64{0, 1, 1 << 40} {
			data := map[string]any{"message": map[string]any{"text": "héllo \u2028 <b>"}}
			got, err := EncodeEvent("message.new", ch, seq, data)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(Event{Event: "message.new", Channel: ch, Seq: seq, Data: data})
			if string(got) != string(want) {
				t.Errorf("channel %q seq %d:\n got %s\nwant %s", ch, seq, got, want)
			}
		}
	}
}
