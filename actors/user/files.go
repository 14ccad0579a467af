package user

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// A user's uploaded files are recorded in the user's scope: the file
// object, the node whose disk holds the bytes (stage 1 keeps a file on the
// node that took the upload), and the channels the file was sent to. The
// gateway that takes an upload adds the record; a send that attaches files
// asks for them here (which records the channel, see OpFileUse) and passes
// them to the channel; a download reads the record to find the bytes and
// the channels whose readers may fetch them.

// Internal ops (never accepted from clients).
const (
	OpFileAdd = "_user.file_add" // args: FileAddArgs → {file}; caller: the owner
	OpFileUse = "_user.file_use" // args: FileUseArgs → FilesResult; caller: the owner
	OpFileGet = "_user.file_get" // args: FileGetArgs → {file}
)

// FileRecord is one uploaded file.
type FileRecord struct {
	protocol.File
	Owner string `json:"owner"`
	// Node is the name of the node whose blob store holds the bytes, and
	// Blob their key there.
	Node string `json:"node"`
	Blob string `json:"blob"`
	// Channels are the channels the file was sent to.
	Channels  []string      `json:"channels,omitempty"`
	CreatedAt protocol.Time `json:"created_at"`
}

// FileAddArgs are the args of OpFileAdd.
type FileAddArgs struct {
	File FileRecord `json:"file"`
}

// FileUseArgs are the args of OpFileUse.
type FileUseArgs struct {
	IDs     []string `json:"ids"`
	Channel string   `json:"channel"`
}

// FileGetArgs are the args of OpFileGet.
type FileGetArgs struct {
	ID string `json:"id"`
}

// FileResult is {file}.
type FileResult struct {
	File FileRecord `json:"file"`
}

// FilesResult is {files}.
type FilesResult struct {
	Files []FileRecord `json:"files"`
}

// maxFilesPerUse bounds the ids of one OpFileUse.
const maxFilesPerUse = 100

// fileState holds the file count and the records written by entries not
// yet durable (the store may not hold them yet).
type fileState struct {
	count   int
	pending map[string]pendingFile
}

type pendingFile struct {
	rec   FileRecord
	index uint64
}

func fileKey(id string) []byte { return append([]byte("file\x00"), id...) }

var fileCountKey = []byte("files")

// Committed tells the state that entries up to index are durable.
func (s *State) Committed(index uint64) {
	for id, p := range s.files.pending {
		if p.index <= index {
			delete(s.files.pending, id)
		}
	}
}

func (s *State) file(id string) (*FileRecord, *protocol.Error) {
	if p, ok := s.files.pending[id]; ok {
		r := p.rec
		return &r, nil
	}
	v, err := s.log.Get(persistence.TableAux, fileKey(id))
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no file %s", id)
	}
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeInternal, "reading file failed")
	}
	var r FileRecord
	if json.Unmarshal(v, &r) != nil {
		return nil, protocol.Errorf(protocol.CodeInternal, "corrupt file record")
	}
	return &r, nil
}

func (s *State) putFile(r FileRecord, eff *Effects) {
	b, err := json.Marshal(r)
	if err != nil {
		panic("user: encode file: " + err.Error())
	}
	e := s.entry(eff)
	e.Put(persistence.TableAux, fileKey(r.ID), b)
	if s.files.pending == nil {
		s.files.pending = make(map[string]pendingFile)
	}
	s.files.pending[r.ID] = pendingFile{rec: r, index: eff.Index}
}

func (s *State) owner(c Caller) *protocol.Error {
	if c.User != s.id {
		return protocol.Errorf(protocol.CodeForbidden, "files of %s are theirs", s.id)
	}
	return nil
}

func (s *State) handleFileAdd(cmd Command, now time.Time, eff *Effects) (any, *protocol.Error) {
	var a FileAddArgs
	if err := protocol.DecodeArgs(cmd.Args, &a); err != nil {
		return nil, err
	}
	if err := s.owner(cmd.Caller); err != nil {
		return nil, err
	}
	r := a.File
	if r.ID == "" || r.Node == "" || r.Blob == "" {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "a file needs id, node and blob")
	}
	if old, perr := s.file(r.ID); perr == nil {
		return FileResult{File: *old}, nil // a retried add
	} else if perr.Code != protocol.CodeNotFound {
		return nil, perr
	}
	if s.files.count >= s.cfg.Rich.MaxFiles {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "%s has uploaded %d files, the limit", s.id, s.files.count)
	}
	r.Owner, r.Channels, r.CreatedAt = s.id, nil, protocol.At(now)
	s.putFile(r, eff)
	s.files.count++
	s.entry(eff).Put(persistence.TableAux, fileCountKey, []byte(strconv.Itoa(s.files.count)))
	return FileResult{File: r}, nil
}

// handleFileUse returns the caller's files named by ids, in order, and
// records that they are sent to channel. It checks every id before it
// records anything.
func (s *State) handleFileUse(cmd Command, _ time.Time, eff *Effects) (any, *protocol.Error) {
	var a FileUseArgs
	if err := protocol.DecodeArgs(cmd.Args, &a); err != nil {
		return nil, err
	}
	if err := s.owner(cmd.Caller); err != nil {
		return nil, err
	}
	if a.Channel == "" || len(a.IDs) > maxFilesPerUse {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "file use needs a channel and at most %d ids", maxFilesPerUse)
	}
	recs := make([]FileRecord, 0, len(a.IDs))
	for _, id := range a.IDs {
		r, perr := s.file(id)
		if perr != nil {
			return nil, perr
		}
		if !slices.Contains(r.Channels, a.Channel) && len(r.Channels) >= s.cfg.Rich.MaxFileChannels {
			return nil, protocol.Errorf(protocol.CodeTooLarge, "file %s was sent to %d channels, the limit", id, len(r.Channels))
		}
		recs = append(recs, *r)
	}
	for i, r := range recs {
		if !slices.Contains(r.Channels, a.Channel) {
			r.Channels = append(slices.Clone(r.Channels), a.Channel)
			s.putFile(r, eff)
		}
		// Records made before file URLs were escaped get a working one.
		r.URL = protocol.FileURL(r.ID)
		recs[i] = r
	}
	return FilesResult{Files: recs}, nil
}

func (s *State) handleFileGet(cmd Command, _ time.Time, _ *Effects) (any, *protocol.Error) {
	var a FileGetArgs
	if err := protocol.DecodeArgs(cmd.Args, &a); err != nil {
		return nil, err
	}
	r, perr := s.file(a.ID)
	if perr != nil {
		return nil, perr
	}
	return FileResult{File: *r}, nil
}
