package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

func TestStores(t *testing.T) {
	fsStore, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Store{"fs": fsStore, "mem": NewMem()} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			n, err := s.Put(ctx, "k1", strings.NewReader("hello"), 5)
			if err != nil || n != 5 {
				t.Fatalf("put: %d %v", n, err)
			}
			b, err := s.Open("k1")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(b)
			b.Close()
			if string(got) != "hello" || b.Size() != 5 || b.ModTime().IsZero() {
				t.Fatalf("read %q size %d", got, b.Size())
			}
			if _, err := s.Put(ctx, "k2", bytes.NewReader(make([]byte, 6)), 5); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("oversize put: %v", err)
			}
			if _, err := s.Open("k2"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("oversize blob stored: %v", err)
			}
			for _, bad := range []string{"", "../x", "a/b", strings.Repeat("k", 65)} {
				if _, err := s.Put(ctx, bad, strings.NewReader("x"), 5); !errors.Is(err, ErrBadKey) {
					t.Errorf("key %q: %v", bad, err)
				}
			}
			if err := s.Delete("k1"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete("k1"); err != nil {
				t.Fatalf("second delete: %v", err)
			}
			if _, err := s.Open("k1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deleted blob: %v", err)
			}
		})
	}
	// A failed put leaves no temporary file behind.
	entries, _ := os.ReadDir(fsStore.dir)
	if len(entries) != 0 {
		t.Errorf("left in the directory: %v", entries)
	}
}
