// Command frostmint is the frostmint CLI: it mints and verifies tokens,
// runs the daemons, and runs a local development cluster.
//
//	frostmint dev up --dir DIR [--signers N --threshold T]
//	frostmint dev signer --dir DIR --id N
//	frostmint demo [--dir DIR]
//	frostmint mint --cluster DIR/cluster.json --audience AUD --scope "a b" [--ttl 5m]
//	frostmint verify --jwks FILE|URL --issuer ISS --audience AUD [--scope S] [TOKEN|-]
//	frostmint coordinator --config FILE
//	frostmint signer --config FILE
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
