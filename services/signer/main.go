// Command signer runs the frostmint signer daemon: one FROST key share.
//
//	signer --config FILE [--log-format json|text]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/verifier/telemetry"
)

func main() {
	// Its own flag set: libraries (go-sev-guest) register flags on the
	// global one, which are not this daemon's interface.
	flags := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	config := flags.String("config", "", "path to the signer's JSON config (required)")
	logFormat := flags.String("log-format", telemetry.DefaultLogFormat, "log lines as `json` or text")
	_ = flags.Parse(os.Args[1:]) // ExitOnError
	if *config == "" || flags.NArg() > 0 {
		flags.Usage()
		os.Exit(2)
	}
	log, err := telemetry.NewLogger(os.Stderr, *logFormat, slog.LevelInfo)
	if err != nil {
		fmt.Fprintln(os.Stderr, "signer:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := signer.RunConfigFile(ctx, *config, log); err != nil {
		fmt.Fprintln(os.Stderr, "signer:", err)
		os.Exit(1)
	}
}
