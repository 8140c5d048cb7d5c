package loadgen_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/loadgen"
	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/signer"
)

// childEnv makes the test binary run a daemon instead of the tests, so
// that the process tests need no frostmint build: it answers the same
// command lines as frostmint (see loadgen.Options.Exe).
const childEnv = "FROSTMINT_LOADGEN_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func runChild(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	switch {
	case len(args) == 3 && args[0] == "coordinator" && args[1] == "--config":
		err = coordinator.RunConfigFile(ctx, args[2], log)
	case len(args) == 3 && args[0] == "signer" && args[1] == "--config":
		err = signer.RunConfigFile(ctx, args[2], log)
	case len(args) == 3 && args[0] == "bench" && args[1] == "--serve-baseline":
		err = loadgen.ServeBaselineFile(ctx, args[2])
	default:
		fmt.Fprintf(os.Stderr, "loadgen test child: unknown command %q\n", args)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// smoke is a short run: no timing is asserted, only that mints happen,
// none fails, and every part of the report is there.
var smoke = loadgen.Scenario{
	Name:     "smoke",
	Load:     loadgen.Load{Callers: 2, Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond},
	Audience: "https://api.example.com",
	Scopes:   []string{"read"},
	Settle:   10 * time.Millisecond,
}

func checkReport(t *testing.T, r *loadgen.Report, daemons []string) {
	t.Helper()
	if r.Mint.OK == 0 || r.Mint.Failed != 0 {
		t.Fatalf("mint: %d ok, %d failed (%v: %s)", r.Mint.OK, r.Mint.Failed, r.Mint.Failures, r.Mint.FirstFailure)
	}
	if r.Baseline == nil || r.Baseline.OK == 0 || r.Baseline.Failed != 0 {
		t.Fatalf("baseline: %+v", r.Baseline)
	}
	if r.Mint.P50 <= 0 || r.Mint.P50 > r.Mint.P99 || r.Mint.P99 > r.Mint.Max {
		t.Fatalf("percentiles out of order: %+v", r.Mint)
	}
	var names []string
	for _, m := range r.Memory {
		if m.Idle <= 0 || m.Load < m.Idle {
			t.Errorf("%s: idle %d, load %d bytes", m.Name, m.Idle, m.Load)
		}
		names = append(names, m.Name)
	}
	if strings.Join(names, ",") != strings.Join(daemons, ",") {
		t.Errorf("memory of %v, want %v", names, daemons)
	}
	var text, sum bytes.Buffer
	r.WriteText(&text)
	r.WriteSummary(&sum)
	if !strings.Contains(text.String(), "mints/s") {
		t.Errorf("text report:\n%s", text.String())
	}
	lines := strings.Split(strings.TrimSpace(sum.String()), "\n")
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || !strings.HasPrefix(f[0], "smoke") {
			t.Fatalf("summary line %q is not NAME VALUE UNIT", l)
		}
		if _, err := strconv.ParseFloat(f[1], 64); err != nil {
			t.Fatalf("summary line %q: %v", l, err)
		}
	}
	for _, want := range []string{"smoke", "smoke_p50", "smoke_p99", "smoke_baseline", "smoke_vs_baseline_rate", "smoke_rss_load_" + strings.NewReplacer("-", "_", " ", "_").Replace(daemons[0])} {
		if !strings.Contains(sum.String(), want+" ") {
			t.Errorf("summary has no %s:\n%s", want, sum.String())
		}
	}
}

func TestInProcessSmoke(t *testing.T) {
	c, err := loadgen.Start(t.Context(), loadgen.Options{Signers: 3, Threshold: 2, Dir: t.TempDir(), Baseline: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := loadgen.Run(t.Context(), c, smoke)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, r, []string{"bench process"})
}

// TestProcessSmoke runs the daemons as processes (this test binary in
// their role), a 3-of-5 with a P-256 caller and the audit logs in a
// directory of their own, and checks that the logs it leaves verify.
func TestProcessSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six processes")
	}
	dir, auditDir := t.TempDir(), t.TempDir()
	c, err := loadgen.Start(t.Context(), loadgen.Options{Signers: 5, Threshold: 3, Dir: dir, AuditDir: auditDir,
		Exe: os.Args[0], Env: []string{childEnv + "=1"}, CallerKey: loadgen.CallerP256, Baseline: true})
	if err != nil {
		t.Fatal(err)
	}
	distinct := smoke
	distinct.Distinct = true
	r, err := loadgen.Run(t.Context(), c, distinct)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, r, []string{"signer-1", "signer-2", "signer-3", "signer-4", "signer-5", "coordinator", "baseline"})
	logs, _ := filepath.Glob(filepath.Join(auditDir, "*.ndjson"))
	if len(logs) != 6 {
		t.Fatalf("audit logs %v, want the coordinator's and five signers'", logs)
	}
	for _, l := range logs {
		if n, err := audit.Verify(l); err != nil || n == 0 {
			t.Errorf("%s: %d records, %v", l, n, err)
		}
	}
}

func TestStartRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    loadgen.Options
	}{
		{"no dir", loadgen.Options{Signers: 3, Threshold: 2}},
		{"threshold above signers", loadgen.Options{Signers: 2, Threshold: 3, Dir: "x"}},
		{"no signers", loadgen.Options{Threshold: 1, Dir: "x"}},
		{"caller key", loadgen.Options{Signers: 3, Threshold: 2, Dir: "x", CallerKey: "rsa"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadgen.Start(t.Context(), tt.o); err == nil {
				t.Fatal("Start succeeded")
			}
		})
	}
}

// fakeClock advances by step at every reading after the first.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
}

// fakeMinter takes 10 ms of the fake clock per mint; every fifth fails.
type fakeMinter struct {
	clock *fakeClock
	n     int
}

func (m *fakeMinter) Mint(context.Context) error {
	m.clock.advance()
	m.n++
	if m.n%5 == 0 {
		return status.Error(codes.Unavailable, "no quorum")
	}
	return nil
}

func (m *fakeMinter) Close() error { return nil }

// TestDriveWindow: only mints that complete within the measured window
// count, and the figures follow from them.
func TestDriveWindow(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0), step: 10 * time.Millisecond}
	m := &fakeMinter{clock: clock}
	r, err := loadgen.Drive(t.Context(), func() (loadgen.Minter, error) { return m, nil },
		loadgen.Load{Callers: 1, Warmup: 100 * time.Millisecond, Duration: time.Second, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	// Mints complete at 10, 20, … ms; the window is [100 ms, 1100 ms):
	// mints 10 to 109, of which those numbered 10, 15, … 105 failed.
	if r.OK != 80 || r.Failed != 20 || r.Failures["Unavailable"] != 20 {
		t.Fatalf("%d ok, %d failed (%v); want 80 and 20 Unavailable", r.OK, r.Failed, r.Failures)
	}
	if r.P50 != 10*time.Millisecond || r.Max != 10*time.Millisecond {
		t.Fatalf("p50 %s, max %s; want 10ms", r.P50, r.Max)
	}
	if got := r.Throughput(); got != 80 {
		t.Fatalf("throughput %.1f/s, want 80/s", got)
	}
}

func TestDriveRefuses(t *testing.T) {
	dial := func() (loadgen.Minter, error) { return nil, errors.New("no route") }
	if _, err := loadgen.Drive(t.Context(), dial, loadgen.Load{Callers: 1, Duration: time.Second}); err == nil {
		t.Fatal("Drive with a failing dialer succeeded")
	}
	if _, err := loadgen.Drive(t.Context(), dial, loadgen.Load{Callers: 0, Duration: time.Second}); err == nil {
		t.Fatal("Drive without callers succeeded")
	}
}
