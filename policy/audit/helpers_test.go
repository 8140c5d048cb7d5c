package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock that advances one second per reading.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)}
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(time.Second)
	return t
}

// openLog opens path with a fake clock and closes it at the end of the test.
func openLog(t testing.TB, path string) *Log {
	t.Helper()
	l, err := Open(path, newClock().now)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// sample returns a varied, valid record numbered i.
func sample(i int) Record {
	r := Record{
		Daemon:    "coordinator",
		RequestID: "req-" + string(rune('a'+i%26)),
		Decision:  Allow,
		Subject:   "spiffe://dev.frostmint.local/team/payments/ci",
		ClientID:  "cli",
		Requested: &Requested{Audience: "https://api.example.com", Scopes: []string{"read", "write"}, TTLSeconds: 300},
		Granted:   &Granted{Audience: "https://api.example.com", Scope: "read write", TTLSeconds: 300, Expiry: 1772600767 + int64(i)},
		Signers:   []uint16{1, 3},
		JTI:       "jti-" + string(rune('a'+i%26)),
	}
	if i%3 == 1 {
		r = Record{Daemon: "coordinator", Decision: Deny, Code: "policy_denied", Reasons: []string{"scope <admin> & more"}}
	}
	return r
}

// writeLog creates a log of n sample records at dir/name and returns its
// path.
func writeLog(t testing.TB, dir, name string, n int) string {
	t.Helper()
	path := filepath.Join(dir, name)
	l, err := Open(path, newClock().now)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for i := range n {
		if err := l.Append(sample(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return path
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// splitLines splits a log into its lines, each with its newline.
func splitLines(b []byte) [][]byte {
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

// lineAt returns the 1-based line that byte offset pos of b belongs to (a
// newline belongs to the line it ends).
func lineAt(b []byte, pos int) int {
	return 1 + bytes.Count(b[:pos], []byte("\n"))
}

// brokenAt fails t unless err is a *BrokenError for path at line want.
func brokenAt(t testing.TB, err error, path string, want int) {
	t.Helper()
	be := asBroken(t, err)
	if be.Path != path || be.Line != want {
		t.Fatalf("got %v, want broken at %s:%d", err, path, want)
	}
}

func asBroken(t testing.TB, err error) *BrokenError {
	t.Helper()
	if !errors.Is(err, ErrBroken) {
		t.Fatalf("got %v, want an error matching ErrBroken", err)
	}
	var be *BrokenError
	if !errors.As(err, &be) {
		t.Fatalf("got %v (%T), want a *BrokenError", err, err)
	}
	return be
}

// sameRecords reports whether a and b hold the same records: equal times
// and otherwise equal encodings.
func sameRecords(a, b []Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Time.Equal(b[i].Time) {
			return false
		}
		x, y := a[i], b[i]
		x.Time, y.Time = time.Time{}, time.Time{}
		xb, err1 := json.Marshal(x)
		yb, err2 := json.Marshal(y)
		if err1 != nil || err2 != nil || !bytes.Equal(xb, yb) {
			return false
		}
	}
	return true
}
