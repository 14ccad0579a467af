package persistence

import (
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// allocate gives f n bytes of allocated blocks at once (fallocate), where
// the filesystem supports it.
func allocate(f vfs.File, n int64) error {
	fd := f.Fd()
	if fd == vfs.InvalidFd {
		return syscall.ENOTSUP
	}
	return syscall.Fallocate(int(fd), 0, 0, n)
}
