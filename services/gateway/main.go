// Command gateway is frostmint's authenticating reverse proxy: it puts
// token checks in front of services that cannot make them themselves.
//
//	gateway --config FILE
//	gateway --listen ADDR --upstream URL --issuer ISS --audience AUD [--jwks FILE|URL] [--scope S]...
//
// Everything is in package verifier/gateway; "gateway --help" lists the
// flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/frostmint/frostmint/verifier/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := gateway.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
