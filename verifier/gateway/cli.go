package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/frostmint/frostmint/verifier/telemetry"
)

// Exit codes of [Main].
const (
	ExitOK      = 0 // stopped by its context (a signal)
	ExitFailure = 1 // could not start, or failed while running
	ExitUsage   = 2 // bad flags or an invalid configuration
)

const usage = `gateway: an authenticating reverse proxy for services that cannot check frostmint tokens themselves.

Usage:
  gateway --config FILE
  gateway --listen ADDR --upstream URL --issuer ISS --audience AUD [--jwks FILE|URL]
          [--scope S]... [--redis HOST:PORT [--redis-password-file FILE]] [--reusable]
          [--admin ADDR] [--audit-log FILE]

The first form reads a JSON config (see the package documentation of
github.com/frostmint/frostmint/verifier/gateway). The second makes one route,
"default", for every path and method: a request is forwarded to URL when it
carries a token of ISS for AUD that grants every --scope.

Flags:
  --config FILE        JSON config; excludes every other flag
  --listen ADDR        proxy address, host:port (cleartext HTTP/1.1 and h2c)
  --upstream URL       where requests go: http://, https:// or h2c:// (gRPC)
  --issuer ISS         the trusted issuer (the tokens' iss)
  --audience AUD       the audience tokens must be for
  --jwks FILE|URL      the issuer's keys (default: OpenID discovery from ISS)
  --scope S            a scope tokens must grant; repeatable, or space-separated
  --redis HOST:PORT    share the replay store with other gateways through Redis
                       (default: in memory, for a single gateway process only)
  --redis-password-file FILE
                       the Redis password
  --reusable           accept a token more than once until it expires
  --admin ADDR         serve /healthz and /readyz on ADDR
  --audit-log FILE     append every decision to this audit log (fail closed)
  --log-format json|text
                       log lines as JSON (the default) or as text; allowed
                       with --config
  --help               print this help

Exit status: 0 when stopped by SIGINT or SIGTERM, 1 when it cannot start or
fails, 2 for bad flags or an invalid configuration.
`

// Main is the gateway command: it parses args (without the program name),
// builds the config, runs the gateway until ctx is done, and returns the
// exit status ([ExitOK], [ExitFailure], [ExitUsage]). Logs go to stderr as
// JSON lines (or text, with --log-format text); --help prints the usage on
// stdout.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // we print our own
	var (
		config       = fs.String("config", "", "")
		listen       = fs.String("listen", "", "")
		upstream     = fs.String("upstream", "", "")
		issuer       = fs.String("issuer", "", "")
		audience     = fs.String("audience", "", "")
		jwksSrc      = fs.String("jwks", "", "")
		redisAddr    = fs.String("redis", "", "")
		redisPwFile  = fs.String("redis-password-file", "", "")
		reusable     = fs.Bool("reusable", false, "")
		admin        = fs.String("admin", "", "")
		auditLog     = fs.String("audit-log", "", "")
		logFormat    = fs.String("log-format", telemetry.DefaultLogFormat, "")
		scopes       []string
		usageProblem = func(msg string) int {
			fmt.Fprintf(stderr, "gateway: %s\nRun \"gateway --help\" for usage.\n", msg)
			return ExitUsage
		}
	)
	fs.Func("scope", "", func(v string) error {
		f := strings.Fields(v)
		if len(f) == 0 {
			return errors.New("empty scope")
		}
		scopes = append(scopes, f...)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return ExitOK
		}
		// The flag package has printed the problem.
		fmt.Fprint(stderr, "Run \"gateway --help\" for usage.\n")
		return ExitUsage
	}
	if fs.NArg() > 0 {
		return usageProblem(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if err := telemetry.CheckLogFormat(*logFormat); err != nil {
		return usageProblem("--log-format: want json or text")
	}

	var cfg Config
	if *config != "" {
		var others []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "config" && f.Name != "log-format" {
				others = append(others, "--"+f.Name)
			}
		})
		if len(others) > 0 {
			return usageProblem("--config excludes " + strings.Join(others, ", "))
		}
		var err error
		if cfg, err = LoadConfig(*config); err != nil {
			return usageProblem(err.Error())
		}
	} else {
		var missing []string
		for _, f := range []struct{ name, v string }{
			{"--listen", *listen}, {"--upstream", *upstream}, {"--issuer", *issuer}, {"--audience", *audience},
		} {
			if f.v == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			return usageProblem("missing " + strings.Join(missing, ", ") + " (or give --config)")
		}
		if *redisPwFile != "" && *redisAddr == "" {
			return usageProblem("--redis-password-file needs --redis")
		}
		cfg = Default()
		cfg.Listen = *listen
		cfg.AdminListen = *admin
		cfg.Issuers = []IssuerConfig{{Issuer: *issuer, JWKS: *jwksSrc}}
		cfg.Audience = *audience
		cfg.Upstream = *upstream
		cfg.AuditLog = *auditLog
		if *redisAddr != "" {
			cfg.Replay.Redis = &RedisConfig{Addr: *redisAddr, PasswordFile: *redisPwFile}
		}
		rt := RouteConfig{Name: "default", PathPrefix: "/", Scopes: scopes}
		if *reusable {
			rt.Replay = ReplayReusable
		}
		cfg.Routes = []RouteConfig{rt}
	}
	if err := cfg.Validate(); err != nil {
		for _, e := range unjoin(err) {
			fmt.Fprintf(stderr, "gateway: %v\n", e)
		}
		fmt.Fprint(stderr, "Run \"gateway --help\" for usage.\n")
		return ExitUsage
	}

	log, err := telemetry.NewLogger(stderr, *logFormat, slog.LevelInfo)
	if err != nil { // CheckLogFormat passed
		return usageProblem(err.Error())
	}
	g, err := New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return ExitFailure
	}
	if err := g.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return ExitFailure
	}
	return ExitOK
}
