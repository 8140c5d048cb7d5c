package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// gate replaces a Log's sync: each sync announces itself on entered and
// then waits for its result on release (nil: the real fdatasync runs).
type gate struct {
	entered chan struct{}
	release chan error
	calls   atomic.Int32
	// gone is closed when the test ends, so that a test that failed
	// half-way does not leave syncs (and its Log's Close) waiting.
	gone chan struct{}
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}), release: make(chan error), gone: make(chan struct{})}
}

var errTestOver = errors.New("test over")

func (g *gate) sync(f *os.File) error {
	g.calls.Add(1)
	select {
	case g.entered <- struct{}{}:
	case <-g.gone:
		return errTestOver
	}
	select {
	case err := <-g.release:
		if err != nil {
			return err
		}
	case <-g.gone:
		return errTestOver
	}
	return fdatasync(f)
}

// openGated opens a new log at path whose syncs go through a gate.
func openGated(t *testing.T, path string) (*Log, *gate) {
	t.Helper()
	l := openLog(t, path)
	g := newGate()
	l.sync = g.sync
	t.Cleanup(func() { close(g.gone) }) // before openLog's Close
	return l, g
}

// waitQueued waits until the Log has taken n lines in all (durable, being
// synced or queued).
func waitQueued(t *testing.T, l *Log, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		seq := l.seq
		l.mu.Unlock()
		if seq == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines taken, want %d", seq, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// appendAsync runs Append(r) in a goroutine; its result arrives on the
// returned channel.
func appendAsync(l *Log, r Record) <-chan error {
	c := make(chan error, 1)
	go func() { c <- l.Append(r) }()
	return c
}

// pending fails t if any of cs has a result: no Append may return before
// its line is durable.
func pending(t *testing.T, what string, cs ...<-chan error) {
	t.Helper()
	for i, c := range cs {
		select {
		case err := <-c:
			t.Fatalf("%s: Append %d returned (%v) before its sync", what, i, err)
		default:
		}
	}
}

func headSeq(t *testing.T, path string) int64 {
	t.Helper()
	h, err := parseHead(readFile(t, path+".head"))
	if err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

// TestGroupCommit: appends that arrive while a sync is under way wait, and
// then share one sync; none returns before its line is durable.
func TestGroupCommit(t *testing.T) {
	for _, n := range []int{1, 2, 15} {
		t.Run(fmt.Sprint(n, " behind"), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			l, g := openGated(t, path)
			first := appendAsync(l, sample(0))
			<-g.entered // the first Append leads a sync of its own line
			var rest []<-chan error
			for i := range n {
				r := sample(i + 1)
				r.RequestID = fmt.Sprint("behind-", i)
				rest = append(rest, appendAsync(l, r))
			}
			waitQueued(t, l, int64(1+n))
			pending(t, "first sync held", append(rest, first)...)
			if got := headSeq(t, path); got != 0 {
				t.Fatalf("the head counts %d lines before any sync ended", got)
			}
			g.release <- nil
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			<-g.entered // one sync for everything queued behind
			pending(t, "second sync held", rest...)
			g.release <- nil
			for _, c := range rest {
				if err := <-c; err != nil {
					t.Fatal(err)
				}
			}
			if got := g.calls.Load(); got != 2 {
				t.Fatalf("%d syncs for %d appends, want 2", got, 1+n)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if got, err := Verify(path); err != nil || got != 1+n {
				t.Fatalf("Verify = %d, %v; want %d, nil", got, err, 1+n)
			}
			if got := headSeq(t, path); got != int64(1+n) {
				t.Fatalf("head after Close counts %d lines, want %d", got, 1+n)
			}
		})
	}
}

// TestSyncFailureFailsBatch: when a batch's sync fails, every Append of
// the batch fails, and so does every later one; the head file never counts
// those lines, and reopening keeps the complete ones (never acknowledged,
// as the package documentation allows).
func TestSyncFailureFailsBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, g := openGated(t, path)
	if err := appendWith(g, l, sample(0)); err != nil {
		t.Fatal(err)
	}
	lead := appendAsync(l, sample(1))
	<-g.entered
	behind := []<-chan error{appendAsync(l, sample(2)), appendAsync(l, sample(3))}
	waitQueued(t, l, 4)
	eio := &os.PathError{Op: "fdatasync", Path: path, Err: syscall.EIO}
	g.release <- eio
	if err := <-lead; !errors.Is(err, ErrUnusable) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append whose sync failed = %v, want ErrUnusable and EIO", err)
	}
	for _, c := range behind {
		if err := <-c; !errors.Is(err, ErrUnusable) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("Append queued behind a failed sync = %v, want ErrUnusable and EIO", err)
		}
	}
	if err := l.Append(sample(4)); !errors.Is(err, ErrUnusable) {
		t.Fatalf("Append after a failed sync = %v, want ErrUnusable", err)
	}
	if got := g.calls.Load(); got != 2 {
		t.Fatalf("%d syncs, want 2 (nothing is synced after a failure)", got)
	}
	l.Close()
	if got := headSeq(t, path); got != 1 {
		t.Fatalf("head counts %d lines, want 1 (the only acknowledged one)", got)
	}
	l2 := openLog(t, path)
	if l2.Recovered() != 0 {
		t.Errorf("Recovered() = %d, want 0", l2.Recovered())
	}
	if got, err := Verify(path); err != nil || got != 2 {
		t.Fatalf("Verify after reopening = %d, %v; want 2 (the failed sync's written line is kept), nil", got, err)
	}
}

// appendWith runs one Append through g, letting its sync through.
func appendWith(g *gate, l *Log, r Record) error {
	c := appendAsync(l, r)
	<-g.entered
	g.release <- nil
	return <-c
}

// TestCrashBetweenWriteAndSync builds every state a crash can leave while
// a batch is written but not yet synced — the acknowledged lines, then
// any prefix of the batch — and checks that Open recovers each: complete
// lines are kept (never acknowledged, allowed), a torn one is removed, and
// every acknowledged record is still there.
func TestCrashBetweenWriteAndSync(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, g := openGated(t, path)
	const acked = 3
	for i := range acked {
		if err := appendWith(g, l, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.checkpoint(); err != nil {
		t.Fatal(err)
	}
	older := readFile(t, path+".head") // a head behind the log is valid

	lead := appendAsync(l, sample(acked))
	<-g.entered
	behind := []<-chan error{appendAsync(l, sample(acked+1)), appendAsync(l, sample(acked+2))}
	waitQueued(t, l, acked+3)
	g.release <- nil
	if err := <-lead; err != nil {
		t.Fatal(err)
	}
	<-g.entered // the second batch is written, its sync not yet done
	if err := l.checkpoint(); err != nil {
		t.Fatal(err)
	}
	current := readFile(t, path+".head")
	written := readFile(t, path)
	lines := splitLines(written)
	durable := bytes.Join(lines[:acked+1], nil)
	batch := written[len(durable):]
	if bytes.Count(batch, []byte("\n")) != 2 {
		t.Fatalf("written but unsynced: %q, want 2 lines", batch)
	}
	g.release <- errors.New("crash")
	for _, c := range behind {
		if err := <-c; err == nil {
			t.Fatal("an Append whose sync failed succeeded")
		}
	}
	l.Close()

	if got := headSeq(t, path); got != acked+1 {
		t.Fatalf("head counts %d lines, want %d: never a line whose sync failed", got, acked+1)
	}
	for _, cut := range crashCuts(batch) {
		for _, head := range [][]byte{older, current} {
			crash := filepath.Join(t.TempDir(), "audit.log")
			writeFile(t, crash, append(bytes.Clone(durable), batch[:cut]...))
			writeFile(t, crash+".head", head)
			crashRecovers(t, crash, acked+1, batch[:cut])
		}
	}
}

// crashCuts returns where a crash may cut batch: nothing, every line end
// and the bytes around it, and every 37th byte in between.
func crashCuts(batch []byte) []int {
	cuts := []int{0, 1, len(batch)}
	for i, c := range batch {
		if c == '\n' {
			cuts = append(cuts, i, i+1, min(i+2, len(batch)))
		}
		if i%37 == 0 {
			cuts = append(cuts, i)
		}
	}
	return cuts
}

// crashRecovers opens the crash image at path, whose first acked lines
// were acknowledged and which ends with tail, a prefix of an unsynced
// batch, and checks what Open recovers: complete lines are kept, a torn
// last line is removed, and the acknowledged records are all there.
func crashRecovers(t *testing.T, path string, acked int, tail []byte) {
	t.Helper()
	cut := len(tail)
	l, err := Open(path, nil)
	if err != nil {
		t.Fatalf("cut %d: Open after a crash: %v", cut, err)
	}
	torn := 0
	if cut > 0 && tail[cut-1] != '\n' {
		torn = 1
	}
	if l.Recovered() != torn {
		t.Errorf("cut %d: Recovered() = %d, want %d", cut, l.Recovered(), torn)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	complete := bytes.Count(tail, []byte("\n"))
	recs, err := ReadAll(path)
	if err != nil || len(recs) != acked+complete {
		t.Fatalf("cut %d: ReadAll = %d records, %v; want %d", cut, len(recs), err, acked+complete)
	}
}

// TestCloseWaitsForAppends: Close lets the Appends already taken finish
// and then brings the head file up to date; Appends after it fail.
func TestCloseWaitsForAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, g := openGated(t, path)
	lead := appendAsync(l, sample(0))
	<-g.entered
	behind := appendAsync(l, sample(1))
	waitQueued(t, l, 2)
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		c := l.closed
		l.mu.Unlock()
		if c {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Append(sample(2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append during Close = %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a sync under way", err)
	default:
	}
	g.release <- nil
	<-g.entered
	g.release <- nil
	for _, c := range []<-chan error{lead, behind} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := headSeq(t, path); got != 2 {
		t.Fatalf("head after Close counts %d lines, want 2", got)
	}
}

// TestHeadNeverAhead: while appenders run flat out, every head file a
// reader sees counts only lines that are already in the log, and after
// Close it counts them all.
func TestHeadNeverAhead(t *testing.T) {
	const writers, each = 8, 40
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := sample(i)
				r.RequestID = fmt.Sprintf("w%d-%d", w, i)
				if err := l.Append(r); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		// As Verify does: the head first, then the log.
		hb, _, err := readHead(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := parseHead(hb)
		if err != nil {
			t.Fatal(err)
		}
		if lines := int64(bytes.Count(readFile(t, path), []byte("\n"))); h.Seq > lines {
			t.Fatalf("head counts %d lines, the log holds %d", h.Seq, lines)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := headSeq(t, path); got != writers*each {
		t.Fatalf("head after Close counts %d lines, want %d", got, writers*each)
	}
	if n, err := Verify(path); err != nil || n != writers*each {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

// BenchmarkAppendParallel is Append from many goroutines: group commit
// shares each fdatasync among the appends waiting for it.
func BenchmarkAppendParallel(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	l := openLog(b, path)
	r := sample(0)
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
