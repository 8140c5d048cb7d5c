package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const reloadInterval = 10 * time.Millisecond

// waitFor polls cond until it holds, failing the test after a generous
// deadline (compiling a policy under -race on a small machine is slow).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startReloader runs r until the test ends and checks how Run returned.
func startReloader(t *testing.T, r *Reloader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

// replaceFile writes name in dir atomically, as a deployment tool should.
func replaceFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := writeFileAtomic(filepath.Join(dir, name), []byte(content)); err != nil {
		t.Fatal(err)
	}
}

// logRecords collects log records for assertions.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// find returns the attributes of the records at level.
func (l *logRecords) find(level slog.Level) []map[string]slog.Value {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]slog.Value
	for _, r := range l.records {
		if r.Level != level {
			continue
		}
		attrs := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value
			return true
		})
		out = append(out, attrs)
	}
	return out
}

// siteData is the default data with one more grant for the dev CLI.
func siteData(t *testing.T, scope string) string {
	t.Helper()
	b, err := fs.ReadFile(DefaultBundle(), "data.json")
	if err != nil {
		t.Fatal(err)
	}
	const grant = `"spiffe://dev.frostmint.local/dev/cli": ["read", "write"`
	s := strings.Replace(string(b), grant, grant+fmt.Sprintf(", %q", scope), 1)
	if s == string(b) {
		t.Fatal("dev CLI grant not found in data.json")
	}
	return s
}

func TestReloaderReloads(t *testing.T) {
	dir := copyDefaultBundle(t)
	logs := &logRecords{}
	r, err := NewReloader(context.Background(), reloadInterval, slog.New(logs), WithFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	h0 := r.Hash()
	if h0 != newEngine(t).Hash() {
		t.Fatal("first engine is not the bundle on disk")
	}
	startReloader(t, r)
	ctx := context.Background()
	metrics := mintInput(devCLI, apiAud, 0, "metrics:read")
	if d, err := r.Evaluate(ctx, metrics); err != nil || d.Allow {
		t.Fatalf("before the update: Evaluate = %+v, %v; want denied", d, err)
	}

	// A good update is picked up.
	replaceFile(t, dir, "data.json", siteData(t, "metrics:read"))
	h1 := newEngine(t, WithFiles(dir)).Hash()
	waitFor(t, "the update", func() bool { return r.Hash() == h1 })
	if d, err := r.Evaluate(ctx, metrics); err != nil || !d.Allow {
		t.Fatalf("after the update: Evaluate = %+v, %v; want allowed", d, err)
	}
	if err := r.LastError(); err != nil {
		t.Fatalf("LastError = %v", err)
	}
	waitFor(t, "the reload log", func() bool {
		for _, attrs := range logs.find(slog.LevelInfo) {
			if attrs["old_hash"].String() == h0 && attrs["new_hash"].String() == h1 {
				return true
			}
		}
		return false
	})

	// A broken update keeps the current engine and is reported.
	good, err := os.ReadFile(filepath.Join(dir, "mint.rego"))
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, dir, "mint.rego", string(good)+"\nbroken := {\n")
	waitFor(t, "the reload error", func() bool { return r.LastError() != nil })
	if err := r.LastError(); !errors.Is(err, ErrCompile) {
		t.Fatalf("LastError = %v, want ErrCompile", err)
	}
	if r.Hash() != h1 {
		t.Fatal("a broken update replaced the engine")
	}
	if d, err := r.Evaluate(ctx, metrics); err != nil || !d.Allow {
		t.Fatalf("after a broken update: Evaluate = %+v, %v; want allowed", d, err)
	}
	waitFor(t, "the error log", func() bool {
		for _, attrs := range logs.find(slog.LevelError) {
			if attrs["policy_hash"].String() == h1 && attrs["err"].Any() != nil {
				return true
			}
		}
		return false
	})

	// A later good update recovers.
	replaceFile(t, dir, "mint.rego", string(good)+"\n# fixed\n")
	h2 := newEngine(t, WithFiles(dir)).Hash()
	waitFor(t, "the fix", func() bool { return r.Hash() == h2 && r.LastError() == nil })

	// A policy that compiles but fails the self-check is refused too.
	replaceFile(t, dir, "mint.rego", "package frostmint.mint\n\nallow := true\n")
	waitFor(t, "the self-check error", func() bool { return r.LastError() != nil })
	if err := r.LastError(); !errors.Is(err, ErrEvaluation) {
		t.Fatalf("LastError = %v, want ErrEvaluation", err)
	}

	// So is a missing file, and its return is a change.
	if err := os.Remove(filepath.Join(dir, "mint.rego")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missing-file error", func() bool { return errors.Is(r.LastError(), ErrLoad) })
	if r.Hash() != h2 {
		t.Fatal("engine changed while the policy was broken")
	}
	replaceFile(t, dir, "mint.rego", string(good))
	waitFor(t, "the restored file", func() bool { return r.Hash() == h1 && r.LastError() == nil })
}

func TestReloaderSignedBundle(t *testing.T) {
	k := newTestKey(t, AlgEdDSA)
	dir := signedBundle(t, k)
	r, err := NewReloader(context.Background(), reloadInterval, nil, WithBundle(dir, k.verification()))
	if err != nil {
		t.Fatal(err)
	}
	h0 := r.Hash()
	startReloader(t, r)

	// Changed but not re-signed: refused.
	replaceFile(t, dir, "data.json", siteData(t, "metrics:read"))
	waitFor(t, "the signature error", func() bool { return r.LastError() != nil })
	if err := r.LastError(); !errors.Is(err, ErrSignature) {
		t.Fatalf("LastError = %v, want ErrSignature", err)
	}
	if r.Hash() != h0 {
		t.Fatal("an unsigned update replaced the engine")
	}

	// Re-signed with the key: accepted.
	k.sign(t, dir)
	h1 := newEngine(t, WithBundle(dir, k.verification())).Hash()
	if h1 == h0 {
		t.Fatal("the update did not change the hash")
	}
	waitFor(t, "the signed update", func() bool { return r.Hash() == h1 && r.LastError() == nil })

	// Changed and signed by another key: refused.
	replaceFile(t, dir, "data.json", siteData(t, "metrics:write"))
	newTestKey(t, AlgEdDSA).sign(t, dir)
	waitFor(t, "the wrong-key error", func() bool { return r.LastError() != nil })
	if err := r.LastError(); !errors.Is(err, ErrSignature) {
		t.Fatalf("LastError = %v, want ErrSignature", err)
	}
	if r.Hash() != h1 {
		t.Fatal("an update signed by another key replaced the engine")
	}
}

func TestReloaderConcurrentEvaluate(t *testing.T) {
	dir := copyDefaultBundle(t)
	good, err := os.ReadFile(filepath.Join(dir, "mint.rego"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReloader(context.Background(), reloadInterval, nil, WithFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	startReloader(t, r)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	allowed := mintInput(devCLI, apiAud, 0, "read", "write")
	denied := mintInput("spiffe://evil.example/x", apiAud, 0, "read")
	const goroutines = 4
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	evals := make([]int, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			n := 0
			for ctx.Err() == nil {
				in, want := allowed, true
				if (g+n)%2 == 1 {
					in, want = denied, false
				}
				n++
				// Pin one engine for the decision and its hash.
				e := r.Current()
				d, err := e.Evaluate(context.Background(), in)
				if err != nil {
					errs <- err
					return
				}
				if d.Allow != want {
					errs <- fmt.Errorf("engine %s: Allow = %v, want %v", e.Hash(), d.Allow, want)
					return
				}
				if _, err := r.Evaluate(context.Background(), in); err != nil {
					errs <- err
					return
				}
			}
			evals[g] = n
		})
	}

	seen := map[string]bool{r.Hash(): true}
	for i := range 6 {
		content := string(good) + fmt.Sprintf("\n# revision %d\n", i)
		if i%2 == 1 {
			content = string(good) + "\nbroken := {\n" // rejected; the engine stays
		}
		replaceFile(t, dir, "mint.rego", content)
		if i%2 == 0 {
			want := newEngine(t, WithFiles(dir)).Hash()
			waitFor(t, fmt.Sprintf("revision %d", i), func() bool { return r.Hash() == want })
			seen[want] = true
		} else {
			waitFor(t, fmt.Sprintf("broken revision %d", i), func() bool { return r.LastError() != nil })
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != 4 {
		t.Fatalf("saw %d engines, want 4", len(seen))
	}
	for g, n := range evals {
		if n == 0 {
			t.Errorf("goroutine %d evaluated nothing", g)
		}
	}
}

func TestReloaderEmbedded(t *testing.T) {
	r, err := NewReloader(context.Background(), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Current() == nil || r.Hash() != newEngine(t).Hash() {
		t.Fatal("not the embedded bundle")
	}
	d, err := r.Evaluate(context.Background(), mintInput(devCLI, apiAud, 0, "read"))
	if err != nil || !d.Allow {
		t.Fatalf("Evaluate = %+v, %v", d, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestReloaderRunOnce: a second concurrent Run returns at once with an
// error; the first runs on until its context ends.
func TestReloaderRunOnce(t *testing.T) {
	r, err := NewReloader(context.Background(), reloadInterval, nil, WithFiles(copyDefaultBundle(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- r.Run(ctx) }()
	}
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("second Run = %v, want an error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("neither Run returned")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("first Run = %v, want context.Canceled", err)
	}
}

func TestNewReloaderErrors(t *testing.T) {
	broken := writeFiles(t, map[string]string{"p.rego": "package frostmint.mint\n\ndecision := {\n"})
	k := newTestKey(t, AlgEdDSA)
	tests := []struct {
		name     string
		interval time.Duration
		opts     []Option
		want     error
	}{
		{"zero interval", 0, nil, ErrLoad},
		{"negative interval", -time.Second, nil, ErrLoad},
		{"compile error", time.Second, []Option{WithFiles(broken)}, ErrCompile},
		{"unsigned bundle", time.Second, []Option{WithBundle(copyDefaultBundle(t), k.verification())}, ErrSignature},
		{"bad options", time.Second, []Option{WithBundle(broken, nil), WithFiles(broken)}, ErrLoad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReloader(context.Background(), tt.interval, nil, tt.opts...)
			if !errors.Is(err, tt.want) || r != nil {
				t.Fatalf("NewReloader = %v, %v; want %v", r, err, tt.want)
			}
		})
	}
}
