package protocol

import (
	"encoding/json"
	"testing"
)

// BenchmarkSendArgsAtTheGateway: what a message.send's args cost the
// gateway. "checked" is what it does now: the scan that refuses unknown
// args, then the channel's decode (the channel decodes the rest);
// "channel-only" is the decode alone, as before args were checked;
// "full" is a full strict decode, which the gateway does for the ops
// whose args it reads itself.
func BenchmarkSendArgsAtTheGateway(b *testing.B) {
	args := json.RawMessage(`{"channel":"general","client_id":"c-123456","text":"hello, how is everyone doing today?","mentions":["bob"]}`)
	op, _ := LookupOp(OpMessageSend)
	b.Run("checked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ref ChannelRef
			if perr := op.CheckArgs(args); perr != nil {
				b.Fatal(perr)
			}
			if perr := DecodeArgs(args, &ref); perr != nil {
				b.Fatal(perr)
			}
		}
	})
	b.Run("channel-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ref ChannelRef
			if perr := DecodeArgs(args, &ref); perr != nil {
				b.Fatal(perr)
			}
		}
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, perr := op.Decode(args); perr != nil {
				b.Fatal(perr)
			}
		}
	})
}

// BenchmarkDecodeRequest: a message.send frame's envelope, in one pass
// (what DecodeRequest does for such a frame) and through encoding/json
// (what it did before, and still does for unusual frames).
func BenchmarkDecodeRequest(b *testing.B) {
	frame := []byte(`{"id":42,"op":"message.send","args":{"channel":"general","client_id":"c-123456","text":"hello, how is everyone doing today?","mentions":["bob"]}}`)
	for _, d := range []struct {
		name   string
		decode func([]byte) (Request, *Error)
	}{{"one-pass", DecodeRequest}, {"encoding-json", decodeRequestSlow}} {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, perr := d.decode(frame); perr != nil {
					b.Fatal(perr)
				}
			}
		})
	}
}
