// Command signer runs the frostmint signer daemon: one FROST key share.
//
//	signer --config FILE
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
)

func main() {
	config := flag.String("config", "", "path to the signer's JSON config (required)")
	flag.Parse()
	if *config == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := signer.RunConfigFile(ctx, *config, slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
		fmt.Fprintln(os.Stderr, "signer:", err)
		os.Exit(1)
	}
}
