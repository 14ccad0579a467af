package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
)

// switchboard export / switchboard import: GET /v1/export and POST
// /v1/import from the command line, with a progress line on a terminal
// and a summary at the end.

// transferFlags are what both commands take.
type transferFlags struct {
	url, apiKey string
}

func (t *transferFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&t.url, "url", "", "the node's HTTP address, http://HOST:PORT")
	fs.StringVar(&t.apiKey, "api-key", "", "a server API key of the node")
}

func (t *transferFlags) check() error {
	if t.url == "" || t.apiKey == "" {
		return errors.New("--url and --api-key are required")
	}
	if !strings.HasPrefix(t.url, "http://") && !strings.HasPrefix(t.url, "https://") {
		t.url = "http://" + t.url
	}
	return nil
}

// progressLine redraws one line on a terminal, at most a few times a
// second; elsewhere it prints nothing.
type progressLine struct {
	w     io.Writer
	on    bool
	what  string
	start time.Time
	mu    sync.Mutex // guards last, drawn
	last  time.Time
	drawn bool
}

func newProgress(stderr io.Writer, what string) *progressLine {
	p := &progressLine{w: stderr, what: what, start: time.Now()}
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *progressLine) update(records, bytes int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last, p.drawn = now, true
	secs := max(now.Sub(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "\r%s: %d records, %s, %.0f records/s  ", p.what, records, sizeOf(bytes), float64(records)/secs)
}

func (p *progressLine) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

func sizeOf(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// httpClient has no overall timeout: an export or import lasts as long
// as it lasts; the context ends it.
var httpClient = &http.Client{}

func exportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs, "switchboard export --url http://HOST:PORT --api-key K [--channel ID] [--out FILE]")
	var t transferFlags
	t.define(fs)
	channel := fs.String("channel", "", "export this channel only")
	out := fs.String("out", "", "write to this file (default: standard output)")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := t.check(); err != nil {
		return err
	}
	var w io.Writer = stdout
	var f *os.File
	if *out != "" {
		var err error
		// Written beside the target and renamed at the end: a failed
		// export never leaves a file that looks whole.
		if f, err = os.CreateTemp(dirOf(*out), ".export-*"); err != nil {
			return err
		}
		defer os.Remove(f.Name())
		w = f
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	p := newProgress(stderr, "export")
	start := time.Now()
	st, err := client.Export(ctx, httpClient, t.url, t.apiKey, *channel, bw, p.update)
	p.end()
	if err == nil {
		err = bw.Flush()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), *out)
		}
	}
	if err != nil {
		return err
	}
	var kinds []string
	for _, k := range []string{"user", "channel", "member", "message"} {
		kinds = append(kinds, fmt.Sprintf("%d %ss", st.ByKind[k], k))
	}
	fmt.Fprintf(stderr, "exported %d records (%s), %s in %s\n", st.Records, strings.Join(kinds, ", "), sizeOf(st.Bytes),
		time.Since(start).Round(time.Millisecond))
	return nil
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, os.PathSeparator); i >= 0 {
		return path[:i+1]
	}
	return "."
}

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs, "switchboard import --url http://HOST:PORT --api-key K [--dry-run] [--json] FILE (- for standard input)")
	var t transferFlags
	t.define(fs)
	dry := fs.Bool("dry-run", false, "check every line and write nothing")
	asJSON := fs.Bool("json", false, "print the node's answer as JSON")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	if err := t.check(); err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	what := "import"
	if *dry {
		what = "import (dry run)"
	}
	p := newProgress(stderr, what)
	start := time.Now()
	res, err := client.Import(ctx, httpClient, t.url, t.apiKey, bufio.NewReaderSize(in, 256<<10), *dry, p.update)
	p.end()
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		verb := "imported"
		if *dry {
			verb = "would import"
		}
		fmt.Fprintf(stdout, "%s %d users, %d channels, %d members, %d messages; %d skipped (already there); %d errors; in %s\n",
			verb, res.Users, res.Channels, res.Members, res.Messages, res.Skipped, len(res.Errors), time.Since(start).Round(time.Millisecond))
		errs := slices.Clone(res.Errors)
		for _, e := range errs {
			if e.Line > 0 {
				fmt.Fprintf(stdout, "line %d: %s: %s\n", e.Line, e.Code, e.Message)
			} else {
				fmt.Fprintf(stdout, "%s: %s\n", e.Code, e.Message)
			}
		}
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d lines refused (their channels were not imported)", len(res.Errors))
	}
	return nil
}
