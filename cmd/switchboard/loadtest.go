package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/loadtest"
)

// loadtestCmd runs `switchboard loadtest`.
func loadtestCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs, "switchboard loadtest --target ws[s]://HOST:PORT/v1/ws[,...] --scenario chat|liveroom|storm|soak [flags]")
	d := loadtest.DefaultConfig()
	cfg := d
	targets := fs.String("target", strings.Join(d.Targets, ","), "gateway WebSocket URLs (ws:// or wss://), comma-separated; sessions are spread over them")
	secret := fs.String("secret", "", "HS256 secret to mint session tokens with (the nodes' --auth-secret); empty: development auth")
	fs.StringVar(&cfg.Scenario, "scenario", d.Scenario, "chat (many small rooms), liveroom (one live channel, many viewers), storm (chat, then every session drops and resumes), soak (chat with history reads, memory sampled)")
	fs.IntVar(&cfg.Sessions, "sessions", d.Sessions, "sessions to open")
	fs.IntVar(&cfg.Channels, "channels", d.Channels, "rooms (chat, storm, soak); session i joins room i mod channels")
	fs.IntVar(&cfg.Senders, "senders", d.Senders, "liveroom: sessions that send")
	fs.Float64Var(&cfg.Rate, "rate", d.Rate, "operations per second offered over the whole run (open loop: latency counts from each send's intended time); 0: none")
	fs.DurationVar(&cfg.Duration, "duration", d.Duration, "measured time after the warmup (more than 0)")
	fs.DurationVar(&cfg.Warmup, "warmup", d.Warmup, "time sends run before measurements start")
	fs.Uint64Var(&cfg.Seed, "seed", d.Seed, "schedule seed: the same seed gives the same sends at the same intended times")
	fs.Float64Var(&cfg.Ramp, "ramp", d.Ramp, "connections opened per second (0: as fast as possible)")
	fs.IntVar(&cfg.MessageBytes, "message-bytes", d.MessageBytes, "text length of each message")
	fs.Float64Var(&cfg.HistoryShare, "history-share", d.HistoryShare, "soak: share of operations that read history, in [0, 1); refused in other scenarios")
	fs.Float64Var(&cfg.ReactionShare, "reaction-share", d.ReactionShare, "liveroom: share of operations that add a reaction (any viewer, to the newest acknowledged message), in [0, 1)")
	fs.StringVar(&cfg.RunID, "run-id", "", "prefix of the run's channel and user ids (default: random)")
	fs.DurationVar(&cfg.Drain, "drain", d.Drain, "wait for outstanding replies, deliveries and the final checks")
	fs.DurationVar(&cfg.Interval, "interval", d.Interval, "progress line and time-series period")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", client.DefaultStallTimeout, "a session whose gateway is silent this long (a paused node) reconnects to the next target; negative: never")
	caFile := fs.String("ca", "", "PEM file of a CA to trust for wss:// targets besides the system's (a test CA from switchboard certs create-ca)")
	certFile := fs.String("cert", "", "PEM client certificate to present to nodes that ask for one (--tls-client-ca); with --key")
	keyFile := fs.String("key", "", "private key of --cert")
	fs.StringVar(&cfg.APIKey, "api-key", "", "soak: one of the nodes' --api-key keys, to read their /metrics")
	out := fs.String("out", "", "directory to write report.json and report.html into")
	quiet := fs.Bool("quiet", false, "no progress line")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	cfg.Targets = splitList(*targets)
	if err := errors.Join(givenValues(fs, cfg), cfg.Validate()); err != nil {
		fmt.Fprintf(stderr, "switchboard loadtest: %v\n", err)
		return errUsage
	}
	var lvl slog.Level
	var err error
	if err = lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = newLogger(stderr, "text", lvl)
	if *caFile != "" || *certFile != "" || *keyFile != "" {
		if cfg.TLS, err = client.LoadTLS(*caFile, *certFile, *keyFile); err != nil {
			return err
		}
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if *secret != "" {
		signer := auth.NewSigner(*secret)
		ttl := cfg.Warmup + cfg.Duration + time.Hour
		cfg.Token = func(user string) (string, error) {
			return signer.SessionToken(auth.Session{User: user}, ttl)
		}
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// The generator allocates per delivery and has memory to spare:
		// collect less often so its own GC does not steal the CPU the
		// node under test (often on the same machine) needs.
		debug.SetGCPercent(400)
	}
	return runLoadtest(ctx, cfg, "switchboard loadtest "+redact(args), *out, stdout)
}

// givenValues refuses flags the config cannot take as given: a zero where
// a zero field means its default (it would silently become the default),
// and --history-share outside soak (it would be ignored). Flags set by
// their environment variables count as given.
func givenValues(fs *flag.FlagSet, cfg loadtest.Config) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	for _, f := range []struct {
		name string
		zero bool
	}{
		{"sessions", cfg.Sessions == 0}, {"channels", cfg.Channels == 0}, {"senders", cfg.Senders == 0},
		{"duration", cfg.Duration == 0}, {"message-bytes", cfg.MessageBytes == 0}, {"drain", cfg.Drain == 0},
		{"interval", cfg.Interval == 0},
	} {
		if given[f.name] && f.zero {
			errs = append(errs, fmt.Errorf("--%s 0: must be more than 0 (leave it out for the default, %s)", f.name, fs.Lookup(f.name).DefValue))
		}
	}
	if given["stall-timeout"] && cfg.StallTimeout == 0 {
		errs = append(errs, fmt.Errorf("--stall-timeout 0: must not be 0 (negative: never; leave it out for the default, %s)", fs.Lookup("stall-timeout").DefValue))
	}
	if given["history-share"] && cfg.HistoryShare != 0 && cfg.Scenario != loadtest.ScenarioSoak {
		errs = append(errs, errors.New("--history-share applies to the soak scenario only"))
	}
	return errors.Join(errs...)
}

// runLoadtest runs a parsed load test, prints its summary and writes its
// report files into out (when set). It fails unless the run passed:
// every session set up, every operation accounted for, every channel
// verified and no violation found.
func runLoadtest(ctx context.Context, cfg loadtest.Config, command, out string, stdout io.Writer) error {
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return err
	}
	rep.Command = command
	rep.WriteSummary(stdout)
	if out != "" {
		if err := rep.WriteFiles(out); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		fmt.Fprintf(stdout, "report: %s/report.html, %s/report.json\n", out, out)
	}
	if ctx.Err() != nil {
		return errors.New("interrupted: the run and the oracle's checks are incomplete")
	}
	if !rep.OK {
		return errors.New("the run failed: " + strings.Join(rep.Problems, "; "))
	}
	return nil
}

// redact joins args for the report, hiding the secret.
func redact(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--secret=") || strings.HasPrefix(a, "-secret="):
			a = a[:strings.IndexByte(a, '=')+1] + "REDACTED"
		case i > 0 && (args[i-1] == "--secret" || args[i-1] == "-secret"):
			a = "REDACTED"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
