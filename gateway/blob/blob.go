// Package blob stores uploaded files' bytes under opaque keys: a Store
// interface, a filesystem implementation (the default: a directory under
// the node's data directory) and an in-memory one for tests. Stage 1 keeps
// a file on the node that took its upload; a replicated or object-store
// implementation can take this seam later.
package blob

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors of a Store.
var (
	// ErrTooLarge means the content exceeded the size given to Put.
	ErrTooLarge = errors.New("blob: too large")
	// ErrNotFound means no blob has the key.
	ErrNotFound = errors.New("blob: not found")
	// ErrBadKey means the key is not 1–64 characters of [a-zA-Z0-9_-].
	ErrBadKey = errors.New("blob: invalid key")
)

// Store keeps blobs.
type Store interface {
	// Put stores r's content under key, failing with ErrTooLarge (and
	// storing nothing) past max bytes. A blob is visible to Open only
	// once Put has returned successfully.
	Put(ctx context.Context, key string, r io.Reader, max int64) (int64, error)
	// Open returns the blob for reading.
	Open(key string) (Blob, error)
	// Delete removes a blob; deleting a missing one is not an error.
	Delete(key string) error
}

// Blob is one stored blob, open for reading.
type Blob interface {
	io.ReadSeekCloser
	Size() int64
	ModTime() time.Time
}

// ValidKey reports whether key may name a blob.
func ValidKey(key string) bool {
	if len(key) == 0 || len(key) > 64 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// copyMax copies at most max bytes of r to w, failing with ErrTooLarge
// when r holds more.
func copyMax(ctx context.Context, w io.Writer, r io.Reader, max int64) (int64, error) {
	n, err := io.Copy(w, io.LimitReader(ctxReader{ctx, r}, max+1))
	if err != nil {
		return n, err
	}
	if n > max {
		return n, ErrTooLarge
	}
	return n, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
