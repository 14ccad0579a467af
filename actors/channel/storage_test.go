package channel

import (
	"errors"
	"testing"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// failingReader fails every read of one table.
type failingReader struct {
	persistence.Reader
	table persistence.Table
	on    bool
}

var errDisk = errors.New("disk failed")

func (f *failingReader) Get(t persistence.Table, k []byte) ([]byte, error) {
	if f.on && t == f.table {
		return nil, errDisk
	}
	return f.Reader.Get(t, k)
}

func (f *failingReader) Scan(t persistence.Table, r persistence.Range) ([]persistence.Record, error) {
	if f.on && t == f.table {
		return nil, errDisk
	}
	return f.Reader.Scan(t, r)
}

// failLater commits what is pending and reloads the State through a
// reader that fails reads of table once turned on.
func (h *harness) failLater(table persistence.Table) *failingReader {
	h.t.Helper()
	h.commit()
	fr := &failingReader{Reader: h.log, table: table}
	s, err := Load(channelID, fr, h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.s = s
	return fr
}

// TestStorageErrorsRefuseCleanly checks that a failed store read refuses
// the command with internal and changes nothing, even for a join whose
// reply needs reads after deciding what the join writes.
func TestStorageErrorsRefuseCleanly(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	tests := []struct {
		name  string
		table persistence.Table
		op    string
		args  string
	}{
		{"join reads history", persistence.TableMessage, protocol.OpChannelJoin, `{"channel":"general"}`},
		{"join reads events", persistence.TableEvent, protocol.OpChannelJoin, `{"channel":"general","since_seq":1}`},
		{"watch reads history", persistence.TableMessage, protocol.OpChannelWatch, `{"channel":"general"}`},
		{"watch reads events", persistence.TableEvent, protocol.OpChannelWatch, `{"channel":"general","since_seq":1}`},
		{"join reads the member", persistence.TableMember, protocol.OpChannelJoin, `{"channel":"general"}`},
		{"send reads idempotency keys", persistence.TableIdem, protocol.OpMessageSend, `{"channel":"general","client_id":"new","text":"x"}`},
		{"history", persistence.TableMessage, protocol.OpMessagesHistory, `{"channel":"general","limit":100}`},
		{"edit reads the message", persistence.TableMessage, protocol.OpMessageEdit, `{"channel":"general","message_id":"1-0000000000000000","text":"x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.MessageCache = 1; c.MemberCache = 1; c.IdemCache = 1 })
			h.create("alice", protocol.TypeStandard, nil)
			sendN(h, 40)
			fr := h.failLater(tt.table)
			fr.on = true
			h.fail(caller("bob"), tt.op, tt.args, protocol.CodeInternal)
			fr.on = false
			eff := h.do(caller("bob"), tt.op, tt.args)
			if eff.Err != nil && eff.Err.Code == protocol.CodeInternal {
				t.Fatalf("after the store recovered: %v", eff.Err)
			}
		})
	}
}
