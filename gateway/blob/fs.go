package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// FS stores each blob as a file in one directory. Put writes a temporary
// file, syncs it and renames it into place, so a blob is whole or absent.
type FS struct {
	dir string
}

// NewFS returns a Store in dir, creating it when missing.
func NewFS(dir string) (*FS, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("blob dir: %w", err)
	}
	return &FS{dir: dir}, nil
}

func (f *FS) path(key string) string { return filepath.Join(f.dir, key) }

// Put implements Store.
func (f *FS) Put(ctx context.Context, key string, r io.Reader, max int64) (n int64, err error) {
	if !ValidKey(key) {
		return 0, ErrBadKey
	}
	tmp, err := os.CreateTemp(f.dir, ".upload-*")
	if err != nil {
		return 0, fmt.Errorf("blob put: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if n, err = copyMax(ctx, tmp, r, max); err != nil {
		return n, err
	}
	if err = tmp.Sync(); err != nil {
		return n, fmt.Errorf("blob put: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return n, fmt.Errorf("blob put: %w", err)
	}
	if err = os.Rename(tmp.Name(), f.path(key)); err != nil {
		return n, fmt.Errorf("blob put: %w", err)
	}
	return n, nil
}

// Open implements Store.
func (f *FS) Open(key string) (Blob, error) {
	if !ValidKey(key) {
		return nil, ErrBadKey
	}
	file, err := os.Open(f.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("blob open: %w", err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("blob open: %w", err)
	}
	return &fsBlob{File: file, size: st.Size(), mod: st.ModTime()}, nil
}

// Delete implements Store.
func (f *FS) Delete(key string) error {
	if !ValidKey(key) {
		return ErrBadKey
	}
	if err := os.Remove(f.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob delete: %w", err)
	}
	return nil
}

type fsBlob struct {
	*os.File
	size int64
	mod  time.Time
}

func (b *fsBlob) Size() int64        { return b.size }
func (b *fsBlob) ModTime() time.Time { return b.mod }
