package main

import (
	"errors"
	"path/filepath"

	"github.com/switchboard-chat/switchboard/gateway/blob"
)

// admitFile decides whether an upload of up to size bytes may be stored
// now: not while the disk does not answer (a stalled raft write), nor
// when it would leave the disk less than the store's reserve free
// (persistence.Store.AdmitFile; the files directory is on the store's
// disk unless a store was configured).
func (n *Node) admitFile(size int64) (release func(), err error) {
	if n.stalled() {
		return nil, errors.New("the disk is not answering (a raft write has not finished)")
	}
	if n.store == nil || n.cfg.Gateway.Files.Store != nil {
		return func() {}, nil
	}
	return n.store.AdmitFile(size)
}

// fileStore returns where this node keeps uploaded files: the configured
// store, else a directory "files" under the data directory (in memory
// when the node runs on an in-memory filesystem, as some tests do).
func fileStore(cfg Config) (blob.Store, error) {
	switch {
	case cfg.Gateway.Files.Store != nil:
		return cfg.Gateway.Files.Store, nil
	case cfg.FS != nil:
		return blob.NewMem(), nil
	}
	return blob.NewFS(filepath.Join(cfg.DataDir, "files"))
}
