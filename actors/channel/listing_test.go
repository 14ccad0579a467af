package channel

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/actors/directory"
	"github.com/switchboard-chat/switchboard/protocol"
)

// dirNotices decodes eff's directory notifications by shard.
func dirNotices(t *testing.T, ns []DirNotice) map[string]directory.Entry {
	t.Helper()
	out := map[string]directory.Entry{}
	for _, n := range ns {
		var e directory.Entry
		if err := json.Unmarshal(n.Args, &e); err != nil {
			t.Fatal(err)
		}
		out[n.Shard] = e
	}
	return out
}

func shardsOf(m map[string]directory.Entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestListingNotifiesDirectory(t *testing.T) {
	h := newHarness(t)
	eff := h.do(caller("alice"), protocol.OpChannelCreate, map[string]any{"type": "community", "tags": []string{"music", "jazz"}})
	got := dirNotices(t, eff.Directory)
	want := []string{directory.TagShard("jazz"), directory.TagShard("music"), directory.TypeShard("community")}
	if !slices.Equal(shardsOf(got), want) {
		t.Fatalf("create notified %v, want %v", shardsOf(got), want)
	}
	e := got[directory.TypeShard("community")]
	if !e.Listed || e.ID != channelID || e.Version != 1 || e.CreatedMS != t0.UnixMilli() {
		t.Errorf("entry %+v", e)
	}
	// What the directory does not index changes nothing there.
	for _, a := range []map[string]any{args("name", "Jazz"), args("slow_mode_ms", 5)} {
		if eff := h.do(caller("alice"), protocol.OpChannelUpdate, a); len(eff.Directory) != 0 {
			t.Errorf("update %v notified %v", a, eff.Directory)
		}
	}
	h.mustSend(caller("alice"), "a1")
	// Tags: the shard of a dropped tag hears of it too.
	eff = h.do(caller("alice"), protocol.OpChannelUpdate, args("tags", []string{"jazz", "live"}))
	got = dirNotices(t, eff.Directory)
	want = []string{directory.TagShard("jazz"), directory.TagShard("live"), directory.TagShard("music"), directory.TypeShard("community")}
	if !slices.Equal(shardsOf(got), want) || got[directory.TagShard("music")].Version != 2 {
		t.Fatalf("tags update notified %v (%+v)", shardsOf(got), got)
	}
	// Private: every shard that listed it is told it is not listed.
	eff = h.do(caller("alice"), protocol.OpChannelUpdate, args("public", false))
	got = dirNotices(t, eff.Directory)
	if len(got) != 3 || got[directory.TypeShard("community")].Listed || got[directory.TypeShard("community")].Version != 3 {
		t.Fatalf("private notified %+v", got)
	}
	if n := h.s.Announce(); len(n) != 0 {
		t.Errorf("an unlisted channel announces %v", n)
	}
	// The version survives a restart; public again, then deleted.
	h.reload()
	eff = h.do(caller("alice"), protocol.OpChannelUpdate, args("public", true))
	if got := dirNotices(t, eff.Directory); got[directory.TypeShard("community")].Version != 4 {
		t.Errorf("after restart %+v", got)
	}
	if got := dirNotices(t, h.s.Announce()); len(got) != 3 || got[directory.TagShard("live")].Version != 4 {
		t.Errorf("announce %+v", got)
	}
	eff = h.do(caller("alice"), protocol.OpChannelDelete, args())
	if got := dirNotices(t, eff.Directory); len(got) != 3 || got[directory.TagShard("jazz")].Listed {
		t.Errorf("delete notified %+v", got)
	}
}

func TestListingOp(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	r := ok[ListingResult](h, caller("anyone"), OpListing, ListingArgs{Shard: directory.TypeShard("standard")})
	if r.Channel == nil || r.Channel.ID != channelID {
		t.Fatalf("listing %+v", r)
	}
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("public", false))
	eff := h.do(caller("anyone"), OpListing, ListingArgs{Shard: directory.TagShard("old")})
	var lr ListingResult
	_ = json.Unmarshal(eff.Result, &lr)
	if lr.Channel != nil {
		t.Errorf("an unlisted channel answered %+v", lr.Channel)
	}
	// The shard that still lists it is told to forget it.
	if got := dirNotices(t, eff.Directory); len(got) != 1 || got[directory.TagShard("old")].Listed {
		t.Errorf("notices %+v", got)
	}
	if eff.Entry != nil {
		t.Errorf("listing wrote")
	}
}
