package raftstore

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Commit commits b (syncing it when sync is set) and closes it. Pebble
// does not survive a failed write of its log: it reports it through its
// logger's Fatalf, which panics. Commit turns that panic into an error, so
// that the caller stops writing (a restart replays the log up to its last
// whole record) instead of taking the node down mid-round.
func Commit(b *pebble.Batch, sync bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the store's log failed (%v): restart the node", p)
		}
	}()
	defer b.Close()
	if b.Empty() {
		return nil
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	return b.Commit(opts)
}
