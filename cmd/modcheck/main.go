// Command modcheck checks that the module can be fetched: it builds, in
// memory, the module zip `go get` would build from the files git tracks
// (and the new files it does not ignore), with golang.org/x/mod/zip's
// rules. A path Windows reserves (aux.go, con.txt), two paths that differ
// only in case, or an oversized file make `go get` of the module fail for
// every user; modcheck names each and exits 1. `make lint` runs it from
// the module root.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

func main() {
	os.Exit(run(os.Stdout, os.Stderr))
}

func run(stdout, stderr io.Writer) int {
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		fmt.Fprintf(stderr, "modcheck: run it from the module root: %v\n", err)
		return 2
	}
	modPath := modfile.ModulePath(gomod)
	paths, err := gitFiles()
	if err != nil {
		fmt.Fprintf(stderr, "modcheck: %v\n", err)
		return 2
	}
	files := make([]zip.File, len(paths))
	for i, p := range paths {
		files[i] = diskFile(p)
	}
	n, size, err := check(modPath, files)
	if err != nil {
		fmt.Fprintf(stderr, "modcheck: module %s cannot be fetched:\n%v\n", modPath, err)
		return 1
	}
	fmt.Fprintf(stdout, "modcheck: %s zips (%d files, %d bytes compressed)\n", modPath, n, size)
	return 0
}

// check builds the module zip of files for modPath and returns how many
// files it holds and its size, or every reason it cannot be built.
func check(modPath string, files []zip.File) (int, int64, error) {
	cf, err := zip.CheckFiles(files)
	if err != nil {
		var list zip.FileErrorList
		if errors.As(err, &list) {
			return 0, 0, fileErrors(list)
		}
		return 0, 0, err
	}
	// Create checks the module path and the files again, and proves the
	// zip is written: what `go mod download` would do with this tree.
	var w countWriter
	if err := zip.Create(&w, module.Version{Path: modPath, Version: "v0.0.0"}, files); err != nil {
		return 0, 0, err
	}
	return len(cf.Valid), w.n, nil
}

// fileErrors lists one invalid file per line.
func fileErrors(list zip.FileErrorList) error {
	var b strings.Builder
	for _, fe := range list {
		fmt.Fprintf(&b, "  %s: %v\n", fe.Path, fe.Err)
	}
	return errors.New(strings.TrimSuffix(b.String(), "\n"))
}

// gitFiles returns the files of the next commit: tracked ones still on
// disk and untracked ones git does not ignore, as slash paths.
func gitFiles() ([]string, error) {
	out, err := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("git ls-files: %v: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	var paths []string
	seen := make(map[string]bool)
	for p := range strings.SplitSeq(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		if _, err := os.Lstat(filepath.FromSlash(p)); errors.Is(err, os.ErrNotExist) {
			continue // deleted, not yet committed
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// diskFile is a file of the work tree, named by its slash path.
type diskFile string

func (f diskFile) Path() string                 { return string(f) }
func (f diskFile) Lstat() (os.FileInfo, error)  { return os.Lstat(filepath.FromSlash(string(f))) }
func (f diskFile) Open() (io.ReadCloser, error) { return os.Open(filepath.FromSlash(string(f))) }

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
