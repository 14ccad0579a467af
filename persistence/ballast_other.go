//go:build !linux

package persistence

import (
	"errors"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// allocate is not supported here: the ballast is written.
func allocate(vfs.File, int64) error { return errors.ErrUnsupported }
