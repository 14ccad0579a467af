package main

import (
	"path/filepath"

	"github.com/switchboard-chat/switchboard/gateway/blob"
)

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
