package user

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// OpImport is an internal op: a user record of an import (POST
// /v1/import), or with no record the assurance that a user the import
// names exists. A user that exists is left as it is (skipped), unless
// Overwrite: the import itself created it, from a reference, before its
// record came.
const OpImport = "_user.import"

// ImportArgs are the args of OpImport.
type ImportArgs struct {
	User      *protocol.UserRecord `json:"user,omitempty"`
	Overwrite bool                 `json:"overwrite,omitempty"`
	DryRun    bool                 `json:"dry_run,omitempty"`
}

// ImportResult answers OpImport.
type ImportResult struct {
	Created bool `json:"created"`
}

func (s *State) handleImport(cmd Command, now time.Time, eff *Effects) (any, *protocol.Error) {
	var a ImportArgs
	if err := protocol.DecodeArgs(cmd.Args, &a); err != nil {
		return nil, err
	}
	p := protocol.User{ID: s.id}
	if r := a.User; r != nil {
		if r.ID != s.id {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "the record is of user %q, not %q", r.ID, s.id)
		}
		l := s.cfg.Limits
		for _, f := range []struct {
			name, v string
			max     int
		}{{"name", r.Name, l.MaxNameLen}, {"description", r.Description, l.MaxTextLen}, {"image", r.Image, l.MaxTextLen}} {
			if len(f.v) > f.max {
				return nil, protocol.Errorf(protocol.CodeTooLong, "%s is %d bytes, the limit is %d", f.name, len(f.v), f.max)
			}
		}
		if perr := protocol.CheckObject("metadata", r.Metadata, l.MaxDataBytes); perr != nil {
			return nil, perr
		}
		p.Name, p.Description, p.Image, p.Metadata = r.Name, r.Description, r.Image, compactObject(r.Metadata)
		p.CreatedAt, p.UpdatedAt = r.CreatedAt, r.UpdatedAt
	}
	replace := a.Overwrite && a.User != nil
	if a.DryRun || (s.exists && !replace) {
		return ImportResult{Created: a.DryRun && (!s.exists || replace)}, nil
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = protocol.At(now)
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = p.CreatedAt
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic("user: encode profile: " + err.Error())
	}
	s.entry(eff).Put(persistence.TableMeta, nil, b)
	s.profile, s.exists = p, true
	return ImportResult{Created: true}, nil
}
