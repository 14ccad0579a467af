package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/zip"
)

// memFile is a file held in memory.
type memFile struct {
	path string
	data string
}

func (f memFile) Path() string                 { return f.path }
func (f memFile) Lstat() (os.FileInfo, error)  { return memInfo{f}, nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(f.data)), nil }

type memInfo struct{ f memFile }

func (i memInfo) Name() string       { return i.f.path[strings.LastIndex(i.f.path, "/")+1:] }
func (i memInfo) Size() int64        { return int64(len(i.f.data)) }
func (i memInfo) Mode() os.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

func tree(paths ...string) []zip.File {
	files := []zip.File{memFile{"go.mod", "module example.com/m\n\ngo 1.26\n"}}
	for _, p := range paths {
		files = append(files, memFile{p, "package x\n"})
	}
	return files
}

func TestCheckAcceptsAFetchableTree(t *testing.T) {
	n, size, err := check("example.com/m", tree("a/auxtable.go", "a/b.go", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 || size == 0 {
		t.Errorf("%d files, %d bytes; want 4 files in a non-empty zip", n, size)
	}
}

// TestCheckNamesEveryUnfetchablePath: a name Windows reserves and two
// paths that differ only in case each stop the zip, and each is named.
func TestCheckNamesEveryUnfetchablePath(t *testing.T) {
	_, _, err := check("example.com/m", tree("actors/channel/aux.go", "docs/Notes.md", "docs/notes.md", "ok.go"))
	if err == nil {
		t.Fatal("the tree zips")
	}
	for _, want := range []string{"actors/channel/aux.go", "docs/notes.md"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "ok.go") {
		t.Errorf("the error names a good file:\n%v", err)
	}
}

func TestCheckRefusesABadModulePath(t *testing.T) {
	if _, _, err := check("example.com/m/v2/", tree("a.go")); err == nil {
		t.Fatal("a malformed module path zips")
	}
}

// TestTheModuleZips runs the check on this repository, as make lint does.
func TestTheModuleZips(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	t.Chdir("../..")
	if err := exec.Command("git", "rev-parse", "--git-dir").Run(); err != nil {
		t.Skip("not a git work tree")
	}
	var stdout, stderr bytes.Buffer
	if code := run(&stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "github.com/switchboard-chat/switchboard zips") {
		t.Errorf("output %q", stdout.String())
	}
}
