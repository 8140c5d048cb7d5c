package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Scenario is one bench run against a cluster.
type Scenario struct {
	// Name prefixes the summary lines, e.g. "mint_t2n3_c64".
	Name string
	// Load is applied to the cluster, and then the same to the baseline.
	Load Load
	// Audience and Scopes are what every caller asks for.
	Audience string
	Scopes   []string
	// Distinct makes every mint ask for an audience of its own (see
	// DistinctCertCallers), so that no policy decision is remembered.
	Distinct bool
	// Settle is how long the cluster idles before its idle memory is read
	// (default 1 s).
	Settle time.Duration
	// MemoryEvery is how often memory is read under load (default 250 ms).
	MemoryEvery time.Duration
}

// Report is what Run measured.
type Report struct {
	Name     string
	Load     Load
	Distinct bool // every mint asked for its own audience
	Mint     Result
	Baseline *Result // nil without a baseline service
	Memory   []MemoryRow
	// CPU is each process's CPU time per successful mint in the measured
	// window of the mint run; BaselineCPU the same for the baseline run.
	CPU, BaselineCPU []CPURow
	// CPUs is runtime.NumCPU; LoadBefore and LoadAfter are /proc/loadavg
	// around the run: the machine is shared, and a figure means little
	// without them.
	CPUs                  int
	LoadBefore, LoadAfter string
}

// CPURow is the CPU time a process used per mint.
type CPURow struct {
	Name    string
	PerMint time.Duration
}

// clusterCPU returns the CPU per mint of the cluster's daemons together
// (not the baseline, not the bench process), and whether any was measured.
func clusterCPU(rows []CPURow) (time.Duration, bool) {
	var sum time.Duration
	n := 0
	for _, r := range rows {
		if r.Name == "baseline" || r.Name == "bench process" {
			continue
		}
		sum += r.PerMint
		n++
	}
	return sum, n > 0
}

// measureCPU runs drive with l, reading every process's CPU time when
// the measured window starts and ends, and returns drive's result and the
// CPU per successful mint.
func measureCPU(c *Cluster, l Load, drive func(Load) (Result, error)) (Result, []CPURow, error) {
	var mu sync.Mutex
	var begin, end []DaemonCPU
	ended := make(chan struct{})
	l.OnWindow = func(start bool) {
		cpu, err := c.CPU()
		mu.Lock()
		defer mu.Unlock()
		if start {
			begin = cpu
			return
		}
		if err == nil {
			end = cpu
		}
		close(ended)
	}
	res, err := drive(l)
	if err != nil {
		return res, nil, err
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	if begin == nil || end == nil || res.OK == 0 {
		return res, nil, nil
	}
	var rows []CPURow
	for _, e := range end {
		for _, b := range begin {
			if b.Name == e.Name {
				rows = append(rows, CPURow{Name: e.Name, PerMint: (e.CPU - b.CPU) / time.Duration(res.OK)})
			}
		}
	}
	return res, rows, nil
}

// MemoryRow is one daemon's resident memory: at idle, the highest
// sampled under load, and its peak since it started (VmHWM, which
// includes unsealing the key share at start).
type MemoryRow struct {
	Name       string
	Idle, Load int64
	Peak       int64
}

// Run measures c: its memory at idle, then the mint run under s.Load
// (reading memory meanwhile), then the baseline under the same load if
// the cluster has one.
func Run(ctx context.Context, c *Cluster, s Scenario) (*Report, error) {
	if s.Settle <= 0 {
		s.Settle = time.Second
	}
	if s.MemoryEvery <= 0 {
		s.MemoryEvery = 250 * time.Millisecond
	}
	r := &Report{Name: s.Name, Load: s.Load, Distinct: s.Distinct, CPUs: runtime.NumCPU(), LoadBefore: loadAvg()}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(s.Settle):
	}
	idle, err := c.Memory()
	if err != nil {
		return nil, err
	}
	rows := map[string]*MemoryRow{}
	for _, m := range idle {
		row := MemoryRow{Name: m.Name, Idle: m.RSS, Load: m.RSS, Peak: m.Peak}
		r.Memory = append(r.Memory, row)
	}
	for i := range r.Memory {
		rows[r.Memory[i].Name] = &r.Memory[i]
	}

	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(s.MemoryEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			ms, err := c.Memory()
			if err != nil {
				continue // a daemon that died shows in the errors
			}
			for _, m := range ms {
				if row := rows[m.Name]; row != nil {
					row.Load = max(row.Load, m.RSS)
					row.Peak = max(row.Peak, m.Peak)
				}
			}
		}
	})
	callers := CertCallers
	if s.Distinct {
		callers = DistinctCertCallers
	}
	r.Mint, r.CPU, err = measureCPU(c, s.Load, func(l Load) (Result, error) {
		return Drive(ctx, callers(c.Addr, c.Caller, s.Audience, s.Scopes), l)
	})
	close(stop)
	sampler.Wait()
	if err != nil {
		return nil, err
	}
	if c.BaselineAddr != "" {
		b, cpu, err := measureCPU(c, s.Load, func(l Load) (Result, error) {
			return Drive(ctx, callers(c.BaselineAddr, c.Caller, s.Audience, s.Scopes), l)
		})
		r.BaselineCPU = cpu
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		r.Baseline = &b
	}
	r.LoadAfter = loadAvg()
	return r, nil
}

// loadAvg returns the first three fields of /proc/loadavg, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) {
	asks := "the same request every time (but nonce and time)"
	if r.Distinct {
		asks = "a distinct audience every mint"
	}
	fmt.Fprintf(w, "%d callers asking for %s, %s measured after %s of warm-up; %d CPUs, load average %s before, %s after\n",
		r.Load.Callers, asks, r.Load.Duration, r.Load.Warmup, r.CPUs, r.LoadBefore, r.LoadAfter)
	line := func(name string, x Result) {
		fmt.Fprintf(w, "%-9s %8.1f mints/s  p50 %7.3f ms  p90 %7.3f ms  p99 %7.3f ms  max %7.3f ms  (%d ok, %d failed)\n",
			name, x.Throughput(), ms(x.P50), ms(x.P90), ms(x.P99), ms(x.Max), x.OK, x.Failed)
	}
	line("mint", r.Mint)
	if r.Mint.Failed > 0 {
		fmt.Fprintf(w, "          failures: %v; first: %s\n", r.Mint.Failures, r.Mint.FirstFailure)
	}
	if b := r.Baseline; b != nil {
		line("baseline", *b)
		if b.Failed > 0 {
			fmt.Fprintf(w, "          failures: %v; first: %s\n", b.Failures, b.FirstFailure)
		}
		rate, lat := r.ratios()
		fmt.Fprintf(w, "ratio     the baseline mints %.2f× as many per second; a mint's p50 is %.2f× the baseline's\n", rate, lat)
	}
	if total, ok := clusterCPU(r.CPU); ok {
		fmt.Fprintf(w, "cpu/mint  %s (daemons together)", us(total))
		for _, c := range r.CPU {
			fmt.Fprintf(w, "; %s %s", c.Name, us(c.PerMint))
		}
		fmt.Fprintln(w)
	}
	if len(r.BaselineCPU) > 0 {
		fmt.Fprintf(w, "          baseline run:")
		for i, c := range r.BaselineCPU {
			if i > 0 {
				fmt.Fprint(w, ";")
			}
			fmt.Fprintf(w, " %s %s", c.Name, us(c.PerMint))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "memory    %-14s %9s %9s %9s\n", "RSS, MiB", "idle", "load", "peak")
	for _, m := range r.Memory {
		fmt.Fprintf(w, "          %-14s %9.1f %9.1f %9.1f\n", m.Name, mib(m.Idle), mib(m.Load), mib(m.Peak))
	}
}

// ratios returns baseline throughput ÷ mint throughput and mint p50 ÷
// baseline p50 (0 when undefined).
func (r *Report) ratios() (rate, p50 float64) {
	b := r.Baseline
	if b == nil {
		return 0, 0
	}
	if t := r.Mint.Throughput(); t > 0 {
		rate = b.Throughput() / t
	}
	if b.P50 > 0 {
		p50 = float64(r.Mint.P50) / float64(b.P50)
	}
	return rate, p50
}

// WriteSummary writes one "NAME VALUE UNIT" line per figure, every name
// prefixed with r.Name: NAME (mints/s), NAME_p50, _p90, _p99, _max (ms),
// NAME_errors, the baseline's NAME_baseline, _baseline_p50, _baseline_p99
// and the ratios NAME_vs_baseline_rate (baseline mints/s ÷ mints/s) and
// NAME_vs_baseline_p50 (p50 ÷ baseline p50), the CPU time per mint of the
// daemons together (NAME_cpu_per_mint) and of each process
// (NAME_cpu_D, NAME_baseline_cpu_D; µs), and each daemon's
// NAME_rss_idle_D and NAME_rss_load_D (MiB).
func (r *Report) WriteSummary(w io.Writer) {
	p := r.Name
	fmt.Fprintf(w, "%s %.1f mints/s\n", p, r.Mint.Throughput())
	fmt.Fprintf(w, "%s_p50 %.3f ms\n", p, ms(r.Mint.P50))
	fmt.Fprintf(w, "%s_p90 %.3f ms\n", p, ms(r.Mint.P90))
	fmt.Fprintf(w, "%s_p99 %.3f ms\n", p, ms(r.Mint.P99))
	fmt.Fprintf(w, "%s_max %.3f ms\n", p, ms(r.Mint.Max))
	fmt.Fprintf(w, "%s_errors %d errors\n", p, r.Mint.Failed)
	if b := r.Baseline; b != nil {
		rate, lat := r.ratios()
		fmt.Fprintf(w, "%s_baseline %.1f mints/s\n", p, b.Throughput())
		fmt.Fprintf(w, "%s_baseline_p50 %.3f ms\n", p, ms(b.P50))
		fmt.Fprintf(w, "%s_baseline_p99 %.3f ms\n", p, ms(b.P99))
		fmt.Fprintf(w, "%s_vs_baseline_rate %.2f x\n", p, rate)
		fmt.Fprintf(w, "%s_vs_baseline_p50 %.2f x\n", p, lat)
	}
	if total, ok := clusterCPU(r.CPU); ok {
		fmt.Fprintf(w, "%s_cpu_per_mint %.0f us\n", p, float64(total)/float64(time.Microsecond))
	}
	for _, c := range r.CPU {
		n := strings.NewReplacer("-", "_", " ", "_").Replace(c.Name)
		fmt.Fprintf(w, "%s_cpu_%s %.0f us\n", p, n, float64(c.PerMint)/float64(time.Microsecond))
	}
	for _, c := range r.BaselineCPU {
		n := strings.NewReplacer("-", "_", " ", "_").Replace(c.Name)
		fmt.Fprintf(w, "%s_baseline_cpu_%s %.0f us\n", p, n, float64(c.PerMint)/float64(time.Microsecond))
	}
	for _, m := range r.Memory {
		n := strings.NewReplacer("-", "_", " ", "_").Replace(m.Name)
		fmt.Fprintf(w, "%s_rss_idle_%s %.1f MiB\n", p, n, mib(m.Idle))
		fmt.Fprintf(w, "%s_rss_load_%s %.1f MiB\n", p, n, mib(m.Load))
	}
}
