// Command coordinator runs the frostmint coordinator: the Mint API.
//
//	coordinator --config FILE
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/frostmint/frostmint/coordinator"
)

func main() {
	config := flag.String("config", "", "path to the coordinator's JSON config (required)")
	flag.Parse()
	if *config == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := coordinator.RunConfigFile(ctx, *config, slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
		os.Exit(1)
	}
}
