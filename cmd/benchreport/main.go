// Command benchreport runs Switchboard's benchmarks and writes their
// figures to a Markdown file (make bench → docs/benchmarks.md): the Go
// micro-benchmarks, memory per idle session against a node in its own
// process, and short load-test runs (a live room's fan-out, durable sends
// across many channels, chat). Every figure is a median of -repeat runs
// and comes with the machine, the commit and the command that produced it.
// These are measurements, never pass/fail tests.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	out      string
	bin      string
	refBin   string // a reference build run alternately in the live room
	refName  string // what the reference build is (a commit)
	repeat   int
	sessions int // idle sessions
	quick    bool
	only     string
	log      io.Writer
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{log: stderr}
	fs.StringVar(&o.out, "out", "docs/benchmarks.md", "Markdown file to write")
	fs.StringVar(&o.bin, "bin", "bin/switchboard", "switchboard binary to run nodes with (make build)")
	fs.StringVar(&o.refBin, "ref-bin", "", "a reference build of switchboard (make bench: an older commit's, bin/switchboard-ref-COMMIT) run alternately with -bin in the live room; its figures and the ratios to them are in the report")
	fs.StringVar(&o.refName, "ref-name", "", "what -ref-bin is built from (a commit), for the report")
	fs.IntVar(&o.repeat, "repeat", 3, "runs per figure; the report quotes the median")
	fs.IntVar(&o.sessions, "idle-sessions", 10000, "idle sessions for the memory figure")
	fs.BoolVar(&o.quick, "quick", false, "tiny runs, to check the tool itself")
	fs.StringVar(&o.only, "only", "", "run one part only (go, idle, live, durable, chat, storm, replicated, faults) and print the report to stdout (docs stay as they are unless -out is given); for working on one figure")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.quick {
		o.repeat, o.sessions = 1, 500
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	raiseFileLimit(stderr)
	b := &bench{o: o, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	start := time.Now()
	if err := b.all(ctx); err != nil {
		fmt.Fprintf(stderr, "benchreport: %v\n", err)
		return 1
	}
	// A partial or quick run is for working on the tool or one figure:
	// it prints, and leaves the report alone unless -out says otherwise.
	outSet := false
	fs.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
	if (o.only != "" || o.quick) && !outSet {
		fmt.Fprint(stdout, b.markdown(time.Since(start)))
		return 0
	}
	report := b.markdown(time.Since(start))
	if old, err := os.ReadFile(o.out); err == nil {
		report += keptNotes(string(old))
	}
	if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
		fmt.Fprintf(stderr, "benchreport: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "benchreport: wrote %s in %s\n", o.out, time.Since(start).Round(time.Second))
	return 0
}

// notesHeading starts the report's hand-written part: comparisons run by
// hand (an A/B of two commits, say), each with its command and date. A
// new report keeps it, so measurements outside the generated tables are
// not lost when make bench runs again.
const notesHeading = "## Notes (written by hand, kept by make bench)"

// keptNotes returns the hand-written part of an old report, or "".
func keptNotes(old string) string {
	i := strings.Index(old, "\n"+notesHeading+"\n")
	if i < 0 {
		return ""
	}
	return "\n" + strings.TrimRight(old[i+1:], "\n") + "\n"
}

// raiseFileLimit lifts the soft open-file limit to the hard one: ten
// thousand sessions need ten thousand sockets on each side.
func raiseFileLimit(w io.Writer) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			fmt.Fprintf(w, "benchreport: raising the open-file limit: %v\n", err)
		}
	}
}
