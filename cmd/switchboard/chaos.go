package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/loadtest/chaos"
)

// chaosCmd runs `switchboard chaos`: its own cluster of `serve` child
// processes, the chat load across every gateway, faults on a seeded
// schedule, and a check of every channel at the end.
func chaosCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs, "switchboard chaos [--nodes 3] [--duration 60s] [--faults kill,pause,wipe,restart,drain,partition,split,oneway,disk-stall,lag,disk-slow] [--seed N] [--out DIR] [flags]")
	d := chaos.DefaultConfig()
	cfg := d
	fs.StringVar(&cfg.Bin, "bin", "", "switchboard binary the nodes run (default: this one)")
	fs.StringVar(&cfg.Out, "out", "", "directory for report.json, report.html, evidence.json, the nodes' logs/ and data/ (default: a new temporary directory)")
	fs.IntVar(&cfg.Nodes, "nodes", d.Nodes, "nodes to start (each gateway and host), on loopback ports that are free")
	fs.DurationVar(&cfg.Duration, "duration", d.Duration, "load time during which faults happen")
	fs.DurationVar(&cfg.Warmup, "warmup", d.Warmup, "load time before the first fault can happen")
	faults := fs.String("faults", strings.Join(d.Faults, ","), "fault kinds to inject, comma-separated: kill, pause, wipe, restart, drain, partition, split, oneway, disk-stall, lag, disk-slow (empty: none, a baseline run)")
	fs.Uint64Var(&cfg.Seed, "seed", d.Seed, "seed of the fault plan and of the load's schedule: the same seed gives the same faults at the same times")
	fs.DurationVar(&cfg.FaultInterval, "fault-interval", d.FaultInterval, "mean time between two faults' starts (±30%)")
	fs.DurationVar(&cfg.Down, "down", d.Down, "mean time a killed or wiped node stays down (±50%); a drained node stays away 1-2 times this")
	fs.DurationVar(&cfg.Pause, "pause", d.Pause, "shortest SIGSTOP of a paused node (up to 1.5 times this); keep it above the election timeout")
	fs.StringVar(&cfg.Detection, "failure-detection", d.Detection, "the nodes' --failure-detection: fast or lan")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", d.DrainTimeout, "the nodes' --drain-timeout; a node still running 15 s past it is killed, and the run fails")
	fs.StringVar(&cfg.WipeIdentity, "wipe-identity", d.WipeIdentity, "a wiped node comes back under a new name, the old one forgotten (new), or under its old name (same)")
	serveArgs := fs.String("serve-args", "", "more `serve` flags for every node, space-separated (e.g. \"--replicas 3\"); they override the harness's")
	fs.StringVar(&cfg.APIKey, "api-key", "", "the nodes' operator API key (default: one made up for the run; set it when --serve-args sets --api-key)")
	fs.IntVar(&cfg.Sessions, "sessions", d.Sessions, "load sessions, spread over every gateway")
	fs.IntVar(&cfg.Channels, "channels", d.Channels, "chat rooms; session i joins room i mod channels")
	fs.Float64Var(&cfg.Rate, "rate", d.Rate, "messages per second offered over the whole run (open loop)")
	fs.IntVar(&cfg.MessageBytes, "message-bytes", d.MessageBytes, "text length of each message")
	fs.DurationVar(&cfg.LoadDrain, "drain", d.LoadDrain, "wait at the end for outstanding replies, deliveries and each history read")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", client.DefaultStallTimeout, "a load session whose gateway is silent this long (a paused node) reconnects to the next one; negative: never")
	fs.BoolVar(&cfg.KeepData, "keep-data", false, "keep the nodes' data directories after a passing run (a failing run always keeps them)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	logLevel := fs.String("log-level", "warn", "the load generator's own log: debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	var err error
	if cfg.Faults, err = chaos.ParseKinds(*faults); err != nil {
		fmt.Fprintf(stderr, "switchboard chaos: --faults: %v\n", err)
		return errUsage
	}
	if cfg.StallTimeout == 0 {
		fmt.Fprintln(stderr, "switchboard chaos: --stall-timeout 0: must not be 0 (negative: never; leave it out for the default)")
		return errUsage
	}
	cfg.ServeArgs = strings.Fields(*serveArgs)
	if cfg.Bin == "" {
		if cfg.Bin, err = os.Executable(); err != nil {
			return fmt.Errorf("find this binary (pass --bin): %w", err)
		}
	}
	tmpOut := cfg.Out == ""
	if tmpOut {
		cfg.Out = "(temporary)" // validated below, made after
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "switchboard chaos: %v\n", err)
		return errUsage
	}
	if tmpOut {
		if cfg.Out, err = os.MkdirTemp("", "switchboard-chaos-"); err != nil {
			return err
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = newLogger(stderr, "text", lvl)
	if !*quiet {
		cfg.Progress = stderr
	}
	cfg.Command = "switchboard chaos " + strings.Join(chaos.Redact(args), " ")
	fmt.Fprintf(stdout, "switchboard chaos: writing to %s\n", cfg.Out)
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		return err
	}
	rep.WriteSummary(stdout)
	if err := rep.WriteFiles(cfg.Out); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Fprintf(stdout, "report: %s/report.html, %s/report.json\n", cfg.Out, cfg.Out)
	if !rep.OK {
		return errors.New("the run failed: " + strings.Join(rep.Problems, "; "))
	}
	return nil
}
