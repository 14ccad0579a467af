package actors

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
	"google.golang.org/protobuf/proto"
)

// worstMessage is a message with every field at the bound l sets, of
// characters the server's JSON escapes in six bytes ('<', and '&' in MIME
// types, whose names are at most 127 bytes each: gateway/files.go).
func worstMessage(l protocol.Limits) *protocol.Message {
	fill := func(prefix string, n int) string { return prefix + strings.Repeat("<", n-len(prefix)) }
	obj := json.RawMessage(`{"d":"` + strings.Repeat("<", l.MaxDataBytes-8) + `"}`)
	flagged, fav := int64(1)<<62, true
	m := &protocol.Message{ID: strings.Repeat("9", 40), Channel: fill("c", l.MaxIDLen), Segment: 1 << 62,
		User: fill("u", l.MaxIDLen), Type: protocol.MessageText, Text: fill("", l.MaxTextLen), Data: obj, Metadata: obj,
		ParentID: strings.Repeat("9", 40), ReplyCount: 1 << 62, Reactions: map[string]int64{}, Favorite: &fav,
		FlagCount: &flagged, ClientID: fill("k", l.MaxIDLen), CreatedAt: protocol.At(time.Now()), EditedAt: protocol.At(time.Now())}
	for i := range l.MaxTags {
		m.Tags = append(m.Tags, fill(fmt.Sprint(i), l.MaxNameLen))
	}
	for i := range l.MaxMentions {
		m.Mentions = append(m.Mentions, fill(fmt.Sprint(i), l.MaxIDLen))
	}
	for i := range l.MaxAttachments {
		id := strings.Repeat("f", 64) + "-" + fill(fmt.Sprint(i), l.MaxIDLen)
		m.Attachments = append(m.Attachments, protocol.File{ID: id, URL: "/v1/files/" + id, Type: "file",
			Name: fill(fmt.Sprint(i), l.MaxNameLen), Size: 1 << 40, MIME: strings.Repeat("&", 127) + "/" + strings.Repeat("&", 127)})
	}
	for i := range l.MaxReactionKinds {
		name := fill(fmt.Sprint(i), l.MaxReactionNameLen)
		m.Reactions[name] = 1 << 62
		m.MyReactions = append(m.MyReactions, name)
	}
	return m
}

// TestWorstHistoryPageFitsAnEnvelope: the largest messages.history reply
// the default limits allow, 100 of the largest messages, fits in one
// envelope (cluster.MaxEnvelopeBytes) with room to spare: at least a
// quarter more than it needs, as cluster/transport.go reasons. Raise a limit and this says
// whether the transport's bound must follow.
func TestWorstHistoryPageFitsAnEnvelope(t *testing.T) {
	l := protocol.DefaultLimits()
	m := worstMessage(l)
	page := protocol.HistoryResult{HasMore: true}
	for range l.MaxHistoryLimit {
		page.Messages = append(page.Messages, m)
	}
	b, err := json.Marshal(page)
	if err != nil {
		t.Fatal(err)
	}
	env := replyEnvelope(&clusterpb.Request{Id: 7, Target: m.Channel}, b, nil)
	if rep := env.GetReply(); rep.Error != nil || len(rep.Result) != len(b) {
		t.Fatalf("the worst page was refused: %v", rep.Error)
	}
	size := proto.Size(env)
	t.Logf("worst message %d bytes, worst page %d bytes, envelope bound %d", len(b)/l.MaxHistoryLimit, size, cluster.MaxEnvelopeBytes)
	if size+size/4 > cluster.MaxEnvelopeBytes {
		t.Fatalf("the worst history page is %d bytes: MaxEnvelopeBytes (%d) no longer covers it with a quarter more to spare", size, cluster.MaxEnvelopeBytes)
	}
}

// TestReplyOverTheEnvelopeBoundIsAnError: a result too large for one
// envelope becomes a too_large error for the same request, which goes out
// in its place.
func TestReplyOverTheEnvelopeBoundIsAnError(t *testing.T) {
	req := &clusterpb.Request{Id: 7, Target: "big"}
	env := replyEnvelope(req, make([]byte, cluster.MaxEnvelopeBytes), nil)
	rep := env.GetReply()
	if rep.Id != 7 || rep.Error == nil || rep.Error.Code != string(protocol.CodeTooLarge) || rep.Result != nil {
		t.Fatalf("reply %d, error %v, result of %d bytes", rep.Id, rep.Error, len(rep.Result))
	}
	if size := proto.Size(env); size > 1<<10 {
		t.Fatalf("the error reply is %d bytes", size)
	}
	// Just under the bound goes as it is.
	env = replyEnvelope(req, make([]byte, cluster.MaxEnvelopeBytes-64), nil)
	if rep := env.GetReply(); rep.Error != nil || len(rep.Result) != cluster.MaxEnvelopeBytes-64 {
		t.Fatalf("a reply within the bound was refused: %v", rep.Error)
	}
}
