package blob

import (
	"bytes"
	"context"
	"io"
	"sync"
	"time"
)

// Mem is an in-memory Store for tests.
type Mem struct {
	mu    sync.Mutex // guards blobs
	blobs map[string]memBlob
}

type memBlob struct {
	data []byte
	mod  time.Time
}

// NewMem returns an empty Mem.
func NewMem() *Mem { return &Mem{blobs: make(map[string]memBlob)} }

// Put implements Store.
func (m *Mem) Put(ctx context.Context, key string, r io.Reader, max int64) (int64, error) {
	if !ValidKey(key) {
		return 0, ErrBadKey
	}
	var buf bytes.Buffer
	n, err := copyMax(ctx, &buf, r, max)
	if err != nil {
		return n, err
	}
	m.mu.Lock()
	m.blobs[key] = memBlob{data: buf.Bytes(), mod: time.Now()}
	m.mu.Unlock()
	return n, nil
}

// Open implements Store.
func (m *Mem) Open(key string) (Blob, error) {
	m.mu.Lock()
	b, ok := m.blobs[key]
	m.mu.Unlock()
	if !ok {
		return nil, ErrNotFound
	}
	return &memReader{Reader: bytes.NewReader(b.data), size: int64(len(b.data)), mod: b.mod}, nil
}

// Delete implements Store.
func (m *Mem) Delete(key string) error {
	m.mu.Lock()
	delete(m.blobs, key)
	m.mu.Unlock()
	return nil
}

// Len returns how many blobs are stored.
func (m *Mem) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.blobs)
}

type memReader struct {
	*bytes.Reader
	size int64
	mod  time.Time
}

func (r *memReader) Close() error       { return nil }
func (r *memReader) Size() int64        { return r.size }
func (r *memReader) ModTime() time.Time { return r.mod }
