// Package benchsummary ends `make bench`: it reads the output of the Go
// benchmarks and of the `frostmint bench` runs (files named on the command
// line) and prints one "NAME VALUE UNIT" line per target of the
// performance issue, required ones first, then the other figures. It
// exits 1 when a required figure is missing.
//
//	frostmint bench summary .bench/*.txt
package benchsummary

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// figure is one summary line.
type figure struct {
	name  string
	value float64
	unit  string
}

func (f figure) String() string {
	return fmt.Sprintf("%s %s %s", f.name, strconv.FormatFloat(f.value, 'f', -1, 64), f.unit)
}

// required are the figures `make bench` must end with, in this order.
var required = []string{
	"mint_t2n3_seq_p50", "mint_t2n3_seq_p99", "mint_t2n3_c64", "mint_t3n5_c64",
	"verify_over_raw", "gateway_p50_overhead",
	"rss_idle_coordinator", "rss_load_coordinator", "rss_idle_signer", "rss_load_signer",
	"replay_cache_bytes_per_entry",
}

// goBench maps a Go benchmark's metric to a figure: the package (the
// end of its import path) and the benchmark's name (without its
// -GOMAXPROCS suffix), the metric's unit in its output, and the figure's
// name, unit and scale.
type goBench struct {
	pkg, bench, metric string
	name, unit         string
	scale              float64
}

var goBenches = []goBench{
	{"/verifier", "BenchmarkVerifyRatio", "x-ed25519", "verify_over_raw", "x", 1},
	{"/verifier/gateway", "BenchmarkGatewayOverhead/clients=1", "p50-overhead-µs", "gateway_p50_overhead", "us", 1},
	{"/verifier", "BenchmarkReplayCacheBytesPerEntry", "bytes/entry", "replay_cache_bytes_per_entry", "bytes", 1},
	{"/policy", "BenchmarkEvaluate", "ns/op", "policy_eval", "us", 1e-3},
	{"/policy", "BenchmarkEvaluateMemoized", "ns/op", "policy_eval_memoized", "us", 1e-3},
	{"/policy/audit", "BenchmarkAppend", "ns/op", "audit_append_seq", "us", 1e-3},
	{"/policy/audit", "BenchmarkAppendParallel", "ns/op", "audit_append_parallel", "us", 1e-3},
	{"/signer/frost", "BenchmarkMint2of3", "ns/op", "frost_session_2of3", "us", 1e-3},
	{"/coordinator", "BenchmarkMint2of3", "ns/op", "coordinator_mint_2of3_inprocess", "us", 1e-3},
	{"/coordinator", "BenchmarkBaselineEd25519Sign", "ns/op", "ed25519_sign", "us", 1e-3},
	{"/verifier", "BenchmarkEd25519VerifyBaseline", "ns/op", "ed25519_verify", "us", 1e-3},
	{"/attest", "BenchmarkVerify", "ns/op", "attest_verify", "us", 1e-3},
}

// harnessLine is a `frostmint bench --summary` line.
var harnessLine = regexp.MustCompile(`^([a-z][a-z0-9_]*) (-?[0-9.]+(?:e[-+]?[0-9]+)?) ([A-Za-z/µ]+)$`)

// benchLine is a Go benchmark result: name-PROCS, iterations, then value
// and unit pairs.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// collect reads benchmark and harness output: Go benchmarks by the
// package of the last "pkg:" line before them.
func collect(r io.Reader, figs map[string]figure) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	pkg := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p
			continue
		}
		if m := harnessLine.FindStringSubmatch(line); m != nil {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				return fmt.Errorf("%q: %w", line, err)
			}
			figs[m[1]] = figure{m[1], v, m[3]}
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for _, gb := range goBenches {
			if gb.bench != m[1] || !strings.HasSuffix(pkg, gb.pkg) {
				continue
			}
			if _, ok := figs[gb.name]; ok {
				continue
			}
			for i := 1; i < len(f); i += 2 {
				if f[i] != gb.metric {
					continue
				}
				v, err := strconv.ParseFloat(f[i-1], 64)
				if err != nil {
					return fmt.Errorf("%q: %w", line, err)
				}
				figs[gb.name] = figure{gb.name, round(v * gb.scale), gb.unit}
			}
		}
	}
	return sc.Err()
}

func round(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 3, 64), 64)
	return r
}

// derive adds the figures made from others: the coordinator's and the
// largest signer's memory in the 2-of-3 run with 64 callers.
func derive(figs map[string]figure) {
	const run = "mint_t2n3_c64_"
	for _, when := range []string{"idle", "load"} {
		if f, ok := figs[run+"rss_"+when+"_coordinator"]; ok {
			figs["rss_"+when+"_coordinator"] = figure{"rss_" + when + "_coordinator", f.value, f.unit}
		}
		prefix := run + "rss_" + when + "_signer_"
		for name, f := range figs {
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			n := "rss_" + when + "_signer"
			if cur, ok := figs[n]; !ok || f.value > cur.value {
				figs[n] = figure{n, f.value, f.unit}
			}
		}
	}
}

// runFigure reports whether name is one of the figures of a harness run
// that the summary repeats: throughput, p50, p99, max, errors, the
// ratios to the baseline and the daemons' CPU per mint (each run's output
// has the rest).
func runFigure(name string) bool {
	if !strings.HasPrefix(name, "mint_") || strings.Contains(name, "_rss_") {
		return false
	}
	if strings.Contains(name, "_cpu_") {
		return strings.HasSuffix(name, "_cpu_per_mint")
	}
	for _, skip := range []string{"_p90", "_baseline", "_baseline_p50", "_baseline_p99"} {
		if strings.HasSuffix(name, skip) && !strings.HasSuffix(name, "_vs"+skip) {
			return false
		}
	}
	return true
}

// summary returns the required figures in order, then the other Go
// benchmark figures and each run's main figures by name, and the names of
// the required ones that are missing.
func summary(figs map[string]figure) (out []figure, missing []string) {
	for _, name := range required {
		if f, ok := figs[name]; ok {
			out = append(out, f)
		} else {
			missing = append(missing, name)
		}
	}
	var rest []string
	for name := range figs {
		if slices.Contains(required, name) {
			continue
		}
		if slices.ContainsFunc(goBenches, func(gb goBench) bool { return gb.name == name }) || runFigure(name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	for _, name := range rest {
		out = append(out, figs[name])
	}
	return out, missing
}

// Main is `frostmint bench summary FILE...`: it prints the summary of
// files on stdout and returns the exit code (1 when a required figure is
// missing or a file cannot be read, 2 for no file).
func Main(args []string, stdout, stderr io.Writer) int {
	figs := map[string]figure{}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: benchsummary FILE...")
		return 2
	}
	for _, path := range args {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(stderr, "benchsummary:", err)
			return 1
		}
		err = collect(f, figs)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "benchsummary: %s: %v\n", path, err)
			return 1
		}
	}
	derive(figs)
	out, missing := summary(figs)
	for _, f := range out {
		fmt.Fprintln(stdout, f)
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "benchsummary: missing %s\n", strings.Join(missing, ", "))
		return 1
	}
	return 0
}
