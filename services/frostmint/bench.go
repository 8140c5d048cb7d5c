package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/frostmint/frostmint/coordinator/loadgen"
	"github.com/frostmint/frostmint/coordinator/loadgen/benchsummary"
)

const benchUsage = `usage: frostmint bench [--signers 3 --threshold 2] [--callers 1] [--duration 5s] [--warmup 1s]
                       [--audit-dir DIR] [--dir DIR] [--caller-key ed25519|p256] [--in-process]
                       [--distinct] [--no-baseline] [--summary NAME]
       frostmint bench --cluster FILE [--callers N] [--duration D] ...

Starts a t-of-n cluster on loopback (real DKG, sealed shares, mutual TLS,
each daemon its own process), or drives the running dev cluster that
cluster.json FILE describes, with N concurrent callers for a while, and
prints throughput, latency percentiles, errors and each daemon's memory,
then the same load on a single-key Ed25519 mint service behind the same
gRPC stack (the baseline), and their ratio. With --summary NAME it ends
with one "NAME VALUE UNIT" line per figure (make bench reads them).

The cluster it starts has default settings, except that its rate limits
are far above what one machine mints and the caller's key is Ed25519 (by
default). Audit logs are as durable as ever; --audit-dir puts them on
another file system (e.g. /dev/shm, to tell the protocol's cost from the
disk's).
`

// benchCmd implements "frostmint bench" (see benchUsage). With
// --serve-baseline FILE it is instead the baseline service that the bench
// starts as a child process.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "summary" {
		return benchsummary.Main(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	signers := fs.Int("signers", 3, "signers `n` of the cluster to start")
	threshold := fs.Int("threshold", 2, "signatures `t` a mint needs")
	callers := fs.Int("callers", 1, "concurrent `callers`, each minting again as soon as it has a token")
	duration := fs.Duration("duration", 5*time.Second, "measured `time`")
	warmup := fs.Duration("warmup", time.Second, "unmeasured `time` under the same load first")
	dir := fs.String("dir", "", "cluster `directory` (default: a temporary one, removed afterwards)")
	auditDir := fs.String("audit-dir", "", "`directory` of the daemons' audit logs (default: in --dir)")
	callerKey := fs.String("caller-key", loadgen.CallerEd25519, "caller certificate's `key`: ed25519 or p256")
	poolSize := fs.Int("pool-size", 0, "coordinator pool_size (default: the coordinator's default)")
	inProcess := fs.Bool("in-process", false, "run the daemons inside this process (for profiling; memory is then this process's)")
	noBaseline := fs.Bool("no-baseline", false, "skip the baseline")
	summary := fs.String("summary", "", "end with NAME VALUE UNIT lines, every NAME starting with this `prefix`")
	clusterFile := fs.String("cluster", "", "drive the running dev cluster of this cluster.json `file` instead (its limits apply)")
	audience := fs.String("audience", "https://api.example.com", "audience every caller asks for")
	scope := fs.String("scope", "read", "space-separated scopes every caller asks for")
	distinct := fs.Bool("distinct", false, "every mint asks for an audience of its own (AUDIENCE/N), so that no daemon can reuse a policy decision")
	serveBaseline := fs.String("serve-baseline", "", "internal: serve the baseline of this config `file` (the bench's child process)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "frostmint bench: %s\n", msg)
		fs.Usage()
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments")
	}
	if *serveBaseline != "" {
		if err := loadgen.ServeBaselineFile(ctx, *serveBaseline); err != nil {
			fmt.Fprintf(stderr, "frostmint bench: %v\n", err)
			return exitRejected
		}
		return exitOK
	}
	if *callers < 1 || *duration <= 0 || *warmup < 0 {
		return usageErr("--callers must be at least 1, --duration positive and --warmup not negative")
	}
	scopes := strings.Fields(*scope)
	if *audience == "" || len(scopes) == 0 {
		return usageErr("--audience and --scope must not be empty")
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "frostmint bench: %v\n", err)
		return exitRejected
	}

	var c *loadgen.Cluster
	var what string
	if *clusterFile != "" {
		if *inProcess {
			exe = ""
		}
		c, err = loadgen.Target(ctx, *clusterFile, exe, !*noBaseline)
		what = "the dev cluster of " + *clusterFile
	} else {
		if *dir == "" {
			tmp, err := os.MkdirTemp("", "frostmint-bench-")
			if err != nil {
				fmt.Fprintf(stderr, "frostmint bench: %v\n", err)
				return exitRejected
			}
			defer os.RemoveAll(tmp)
			*dir = tmp
		}
		o := loadgen.Options{Signers: *signers, Threshold: *threshold, Dir: *dir, AuditDir: *auditDir,
			CallerKey: *callerKey, PoolSize: *poolSize, Baseline: !*noBaseline}
		how := "each daemon its own process"
		if !*inProcess {
			o.Exe = exe
		} else {
			how = "daemons in this process"
		}
		logs := *auditDir
		if logs == "" {
			logs = "in " + *dir
		}
		what = fmt.Sprintf("%d-of-%d cluster on loopback, %s, caller key %s, audit logs %s", *threshold, *signers, how, *callerKey, logs)
		fmt.Fprintf(stderr, "frostmint bench: starting a %s…\n", what)
		c, err = loadgen.Start(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(stderr, "frostmint bench: %v\n", err)
		return exitRejected
	}
	defer c.Close()

	name := *summary
	if name == "" {
		name = "bench"
	}
	r, err := loadgen.Run(ctx, c, loadgen.Scenario{Name: name, Audience: *audience, Scopes: scopes, Distinct: *distinct,
		Load: loadgen.Load{Callers: *callers, Warmup: *warmup, Duration: *duration}})
	if err != nil {
		fmt.Fprintf(stderr, "frostmint bench: %v\n", err)
		return exitRejected
	}
	fmt.Fprintf(stdout, "frostmint bench: %s\n", what)
	r.WriteText(stdout)
	if *summary != "" {
		r.WriteSummary(stdout)
	}
	if r.Mint.OK == 0 {
		fmt.Fprintln(stderr, "frostmint bench: no mint succeeded")
		return exitRejected
	}
	return exitOK
}
