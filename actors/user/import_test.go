package user

import (
	"encoding/json"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// An imported user keeps its profile and times; an existing one is left
// as it is unless the import created it from a reference first.
func TestImportUser(t *testing.T) {
	h := newHarness(t)
	rec := &protocol.UserRecord{Kind: "user", ID: "alice", Name: "Ann", Metadata: json.RawMessage(`{ "a": 1 }`),
		CreatedAt: protocol.At(t0.AddDate(-3, 0, 0))}
	imp := func(a ImportArgs) ImportResult {
		t.Helper()
		b, _ := json.Marshal(a)
		eff := h.do(OpImport, string(b))
		if eff.Err != nil {
			t.Fatalf("import: %v", eff.Err)
		}
		var r ImportResult
		_ = json.Unmarshal(eff.Result, &r)
		return r
	}
	if r := imp(ImportArgs{}); !r.Created { // a reference: the user is made
		t.Fatal("not created")
	}
	if r := imp(ImportArgs{User: rec}); r.Created {
		t.Fatal("an existing user was overwritten")
	}
	if r := imp(ImportArgs{User: rec, Overwrite: true}); !r.Created {
		t.Fatal("overwrite refused")
	}
	h.reload()
	p := h.s.Profile()
	if p.Name != "Ann" || string(p.Metadata) != `{"a":1}` || !p.CreatedAt.Equal(rec.CreatedAt.Time) || !p.UpdatedAt.Equal(rec.CreatedAt.Time) {
		t.Errorf("profile %+v", p)
	}
	long := *rec
	long.Name = string(make([]byte, 1000))
	b, _ := json.Marshal(ImportArgs{User: &long, DryRun: true})
	if eff := h.do(OpImport, string(b)); eff.Err == nil || eff.Err.Code != protocol.CodeTooLong {
		t.Errorf("a long name: %v", eff.Err)
	}
}
