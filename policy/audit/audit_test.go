package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGenesis(t *testing.T) {
	sum := sha256.Sum256([]byte("frostmint audit v1"))
	if got := hex.EncodeToString(sum[:]); got != Genesis {
		t.Fatalf("Genesis = %s, want %s", Genesis, got)
	}
}

// TestGolden pins the exact bytes of the format: if a change to this
// package or to encoding/json changes them, existing logs would no longer
// verify.
func TestGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	if err := l.Append(Record{
		Time:      time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("CET", 3600)),
		Daemon:    "coordinator",
		RequestID: "r1",
		Decision:  Allow,
		Subject:   "spiffe://x/<y>&z",
		Requested: &Requested{Audience: "aud", Scopes: []string{"read"}, TTLSeconds: 60},
		Granted:   &Granted{Audience: "aud", Scope: "read", TTLSeconds: 60, Expiry: 1772596027},
		Signers:   []uint16{1, 2},
		JTI:       "j1",
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Record{Daemon: "signer-2", Decision: Deny, Code: "evidence_reused", Reasons: []string{"é\u2028"}}); err != nil {
		t.Fatal(err)
	}
	// The head file catches up in the background; Close brings it up to
	// date.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	line1 := `{"seq":1,"prev":"` + Genesis + `","record":{"time":"2026-03-04T04:06:07.00000089Z","daemon":"coordinator","request_id":"r1","decision":"allow","sub":"spiffe://x/\u003cy\u003e\u0026z","requested":{"aud":"aud","scopes":["read"],"ttl_seconds":60},"granted":{"aud":"aud","scope":"read","ttl_seconds":60,"exp":1772596027},"signers":[1,2],"jti":"j1"}}`
	sum1 := sha256.Sum256([]byte(line1))
	line2 := `{"seq":2,"prev":"` + hex.EncodeToString(sum1[:]) + `","record":{"time":"2026-03-04T05:06:07.00000089Z","daemon":"signer-2","decision":"deny","code":"evidence_reused","reasons":["é\u2028"]}}`
	sum2 := sha256.Sum256([]byte(line2))
	if got, want := string(readFile(t, path)), line1+"\n"+line2+"\n"; got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
	if got, want := string(readFile(t, path+".head")), `{"seq":2,"hash":"`+hex.EncodeToString(sum2[:])+`"}`+"\n"; got != want {
		t.Errorf("head: %s, want %s", got, want)
	}
}

func TestAppendVerifyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	c := newClock()
	l, err := Open(path, c.now)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Path() != path {
		t.Errorf("Path() = %q, want %q", l.Path(), path)
	}
	if n, err := Verify(path); err != nil || n != 0 {
		t.Fatalf("Verify of a new log = %d, %v; want 0, nil", n, err)
	}
	var want []Record
	reads := newClock() // a twin of c, to predict its readings
	for i := range 10 {
		r := sample(i)
		if i == 4 {
			r.Time = time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("X", -7*3600))
		}
		if err := l.Append(r); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if r.Time.IsZero() {
			r.Time = reads.now()
		}
		want = append(want, r)
		if n, err := Verify(path); err != nil || n != i+1 {
			t.Fatalf("Verify after %d appends = %d, %v", i+1, n, err)
		}
	}
	got, err := ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRecords(got, want) {
		t.Fatalf("ReadAll:\n%+v\nwant:\n%+v", got, want)
	}
	for i, r := range got {
		if r.Time.Location() != time.UTC {
			t.Errorf("record %d time %v is not in UTC", i, r.Time)
		}
	}
	for _, p := range []string{path, path + ".head"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
}

func TestAppendRefusesInvalid(t *testing.T) {
	tests := []struct {
		name string
		r    Record
	}{
		{"empty decision", Record{Daemon: "d"}},
		{"capitalised", Record{Daemon: "d", Decision: "Allow"}},
		{"upper", Record{Daemon: "d", Decision: "DENY"}},
		{"other", Record{Daemon: "d", Decision: "permit"}},
		{"space", Record{Daemon: "d", Decision: "allow "}},
		{"year 10000", Record{Daemon: "d", Decision: Allow, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"too long", Record{Daemon: "d", Decision: Deny, Reasons: []string{strings.Repeat("x", MaxLineSize)}}},
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Append(tt.r); !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("Append = %v, want ErrInvalidRecord", err)
			}
		})
	}
	// Nothing was written, and the log is still usable.
	if err := l.Append(sample(0)); err != nil {
		t.Fatalf("Append after refusals: %v", err)
	}
	if n, err := Verify(path); err != nil || n != 1 {
		t.Fatalf("Verify = %d, %v; want 1, nil", n, err)
	}
}

func TestAppendZeroClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, func() time.Time { return time.Time{} })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(sample(0)); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Append with a zero clock = %v, want ErrInvalidRecord", err)
	}
}

func TestConcurrentAppend(t *testing.T) {
	const goroutines, each = 16, 25
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r := sample(i)
				r.RequestID = fmt.Sprintf("g%d-%d", g, i)
				errs <- l.Append(r)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := Verify(path); err != nil || n != goroutines*each {
		t.Fatalf("Verify = %d, %v; want %d, nil", n, err, goroutines*each)
	}
	recs, err := ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for i, r := range recs {
		if seen[r.RequestID] {
			t.Fatalf("request %s recorded twice", r.RequestID)
		}
		seen[r.RequestID] = true
		if i > 0 && !r.Time.After(recs[i-1].Time) {
			t.Fatalf("record %d time %v not after %v: times must follow log order", i, r.Time, recs[i-1].Time)
		}
	}
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct requests, want %d", len(seen), goroutines*each)
	}
	// seq is checked by Verify; check it directly too.
	for i, line := range splitLines(readFile(t, path)) {
		if prefix := fmt.Sprintf(`{"seq":%d,`, i+1); !bytes.HasPrefix(line, []byte(prefix)) {
			t.Fatalf("line %d starts %.20q, want %q", i+1, line, prefix)
		}
	}
}

func TestReopenContinuesChain(t *testing.T) {
	path := writeLog(t, t.TempDir(), "audit.log", 3)
	for round := range 3 {
		l, err := Open(path, newClock().now)
		if err != nil {
			t.Fatalf("round %d: Open: %v", round, err)
		}
		if l.Recovered() != 0 {
			t.Errorf("Recovered() = %d, want 0", l.Recovered())
		}
		for i := range 2 {
			if err := l.Append(sample(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if n, err := Verify(path); err != nil || n != 3+2*(round+1) {
			t.Fatalf("round %d: Verify = %d, %v", round, n, err)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	if err := l.Append(sample(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	l2, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	l2.Close()
}

// TestTamperEveryByte changes every byte of a small log in several ways
// and expects Verify to name the line that byte belongs to.
func TestTamperEveryByte(t *testing.T) {
	dir := t.TempDir()
	orig := writeLog(t, dir, "orig.log", 4)
	data, head := readFile(t, orig), readFile(t, orig+".head")
	path := filepath.Join(dir, "tampered.log")
	writeFile(t, path+".head", head)
	edits := []struct {
		name string
		edit func(byte) byte
	}{
		{"xor 0x01", func(b byte) byte { return b ^ 0x01 }},
		{"xor 0x20", func(b byte) byte { return b ^ 0x20 }},
		{"xor 0x80", func(b byte) byte { return b ^ 0x80 }},
		{"newline", func(byte) byte { return '\n' }},
		{"space", func(byte) byte { return ' ' }},
		{"zero", func(byte) byte { return '0' }},
	}
	tried := 0
	for _, e := range edits {
		for pos := range data {
			b := e.edit(data[pos])
			if b == data[pos] {
				continue
			}
			tampered := bytes.Clone(data)
			tampered[pos] = b
			writeFile(t, path, tampered)
			_, err := Verify(path)
			if err == nil {
				t.Fatalf("%s at byte %d (line %d): Verify succeeded", e.name, pos, lineAt(data, pos))
			}
			be := asBroken(t, err)
			if want := lineAt(data, pos); be.Line != want {
				t.Fatalf("%s at byte %d: got %v, want line %d", e.name, pos, err, want)
			}
			tried++
		}
	}
	t.Logf("%d single-byte edits, each reported at its own line", tried)
}

func TestDeleteAnyLine(t *testing.T) {
	const n = 5
	dir := t.TempDir()
	orig := writeLog(t, dir, "orig.log", n)
	lines := splitLines(readFile(t, orig))
	for k := 1; k <= n; k++ {
		t.Run(fmt.Sprint("line ", k), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			writeFile(t, path+".head", readFile(t, orig+".head"))
			writeFile(t, path, slices.Concat(slices.Delete(slices.Clone(lines), k-1, k)...))
			_, err := Verify(path)
			brokenAt(t, err, path, k)
		})
	}
	t.Run("all", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		writeFile(t, path+".head", readFile(t, orig+".head"))
		writeFile(t, path, nil)
		_, err := Verify(path)
		brokenAt(t, err, path, 1)
	})
	t.Run("last two", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		writeFile(t, path+".head", readFile(t, orig+".head"))
		writeFile(t, path, slices.Concat(lines[:n-2]...))
		_, err := Verify(path)
		brokenAt(t, err, path, n-1)
	})
}

func TestReorderLines(t *testing.T) {
	const n = 5
	dir := t.TempDir()
	orig := writeLog(t, dir, "orig.log", n)
	lines := splitLines(readFile(t, orig))
	for i := 1; i <= n; i++ {
		for j := i + 1; j <= n; j++ {
			t.Run(fmt.Sprintf("swap %d %d", i, j), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "audit.log")
				writeFile(t, path+".head", readFile(t, orig+".head"))
				swapped := slices.Clone(lines)
				swapped[i-1], swapped[j-1] = swapped[j-1], swapped[i-1]
				writeFile(t, path, slices.Concat(swapped...))
				_, err := Verify(path)
				brokenAt(t, err, path, i)
			})
		}
		t.Run(fmt.Sprint("duplicate ", i), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			writeFile(t, path+".head", readFile(t, orig+".head"))
			writeFile(t, path, slices.Concat(slices.Insert(slices.Clone(lines), i, lines[i-1])...))
			_, err := Verify(path)
			brokenAt(t, err, path, i+1)
		})
	}
}

// TestNonCanonical rewrites a line so that it means the same to a lenient
// JSON reader, and keeps the chain and head consistent with it: only the
// canonical-form check can refuse it.
func TestNonCanonical(t *testing.T) {
	orig := filepath.Join(t.TempDir(), "orig.log")
	l := openLog(t, orig)
	r := sample(0)
	r.Reasons = []string{"<admin>"}
	if err := l.Append(r); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSuffix(string(readFile(t, orig)), "\n")
	tests := []struct{ name, old, new string }{
		{"space", `{"seq":1,`, `{"seq": 1,`},
		{"key order", `{"seq":1,"prev":"` + Genesis + `",`, `{"prev":"` + Genesis + `","seq":1,`},
		{"key case", `"seq"`, `"Seq"`},
		{"duplicate key", `"decision":"allow"`, `"decision":"deny","decision":"allow"`},
		{"escape", `"daemon":"coordinator"`, `"daemon":"co\u006frdinator"`},
		{"unescaped html", `\u003c`, `<`},
		{"time offset", `07.00000089Z"`, `07.00000089+00:00"`},
		{"time not UTC", `07.00000089Z"`, `07.00000089+02:00"`},
		{"time zeros", `07.00000089Z"`, `07.000000890Z"`},
		{"number", `"ttl_seconds":300`, `"ttl_seconds":3e2`},
		{"unknown field", `"jti":"jti-a"`, `"jti":"jti-a","extra":1`},
		{"trailing", `}}`, `}} `},
		{"crlf", `}}`, "}}\r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(line, tt.old) {
				t.Fatalf("%q not in %s", tt.old, line)
			}
			edited := strings.Replace(line, tt.old, tt.new, 1)
			path := filepath.Join(t.TempDir(), "audit.log")
			writeFile(t, path, []byte(edited+"\n"))
			writeFile(t, path+".head", encodeHead(head{Seq: 1, Hash: hashLine([]byte(edited))}))
			_, err := Verify(path)
			brokenAt(t, err, path, 1)
		})
	}
}

func TestHeadFile(t *testing.T) {
	const n = 3
	dir := t.TempDir()
	orig := writeLog(t, dir, "orig.log", n)
	data, hb := readFile(t, orig), readFile(t, orig+".head")
	lines := splitLines(data)

	setup := func(t *testing.T, head []byte, haveHead bool) string {
		path := filepath.Join(t.TempDir(), "audit.log")
		writeFile(t, path, data)
		if haveHead {
			writeFile(t, path+".head", head)
		}
		return path
	}
	t.Run("missing", func(t *testing.T) {
		path := setup(t, nil, false)
		_, err := Verify(path)
		brokenAt(t, err, path, n+1)
		if _, err := Open(path, nil); !errors.Is(err, ErrBroken) {
			t.Fatalf("Open = %v, want ErrBroken", err)
		}
	})
	t.Run("every byte", func(t *testing.T) {
		path := setup(t, hb, true)
		for pos := range hb {
			for _, mask := range []byte{0x01, 0x20, 0x80} {
				edited := bytes.Clone(hb)
				edited[pos] ^= mask
				writeFile(t, path+".head", edited)
				_, err := Verify(path)
				if err == nil {
					t.Fatalf("head byte %d ^ %#x: Verify succeeded", pos, mask)
				}
				if be := asBroken(t, err); be.Line < 1 || be.Line > n+1 {
					t.Fatalf("head byte %d ^ %#x: %v: line out of range", pos, mask, err)
				}
			}
		}
	})
	tests := []struct {
		name string
		head head
		want int // broken line, 0 if it verifies
	}{
		{"ahead", head{Seq: n + 1, Hash: hashLine(lines[n-1][:len(lines[n-1])-1])}, n + 1},
		{"far ahead", head{Seq: 100, Hash: Genesis}, n + 1},
		{"wrong hash", head{Seq: n, Hash: Genesis}, n},
		{"wrong line", head{Seq: n - 1, Hash: hashLine(lines[n-1][:len(lines[n-1])-1])}, n - 1},
		{"seq 0 not genesis", head{Seq: 0, Hash: hashLine(lines[0][:len(lines[0])-1])}, n + 1},
		{"negative", head{Seq: -1, Hash: Genesis}, n + 1},
		// A head behind the log is a checkpoint: it counts no more lines
		// than there are, so no lines are missing (see the package doc).
		{"behind by one", head{Seq: n - 1, Hash: hashLine(lines[n-2][:len(lines[n-2])-1])}, 0},
		{"seq 0", head{Seq: 0, Hash: Genesis}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := setup(t, encodeHead(tt.head), true)
			got, err := Verify(path)
			if tt.want == 0 {
				if err != nil || got != n {
					t.Fatalf("Verify = %d, %v; want %d, nil", got, err, n)
				}
				return
			}
			brokenAt(t, err, path, tt.want)
		})
	}
	for _, tt := range []struct {
		name string
		b    string
	}{
		{"empty", ""},
		{"no newline", strings.TrimSuffix(string(hb), "\n")},
		{"spaces", strings.Replace(string(hb), ":", ": ", 1)},
		{"extra field", strings.Replace(string(hb), "}", `,"x":1}`, 1)},
		{"two lines", string(hb) + string(hb)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := setup(t, []byte(tt.b), true)
			_, err := Verify(path)
			brokenAt(t, err, path, n+1)
		})
	}
}

func TestEmptyLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeFile(t, path, nil)
	if n, err := Verify(path); err != nil || n != 0 {
		t.Fatalf("Verify of an empty log without head = %d, %v; want 0, nil", n, err)
	}
	l := openLog(t, path)
	l.Close()
	if got, want := string(readFile(t, path+".head")), `{"seq":0,"hash":"`+Genesis+`"}`+"\n"; got != want {
		t.Fatalf("head of an empty log = %q, want %q", got, want)
	}
}

func TestVerifyMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.log")
	_, err := Verify(path)
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrBroken) {
		t.Fatalf("Verify = %v, want fs.ErrNotExist and not ErrBroken", err)
	}
	if _, err := ReadAll(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadAll = %v, want fs.ErrNotExist", err)
	}
}

func TestLineTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeFile(t, path, bytes.Repeat([]byte("x"), MaxLineSize+10))
	_, err := Verify(path)
	brokenAt(t, err, path, 1)
}

// nextLine returns the line (without newline) that appending r to the log
// at path would write, leaving the log as it was.
func nextLine(t *testing.T, path string, r Record) []byte {
	t.Helper()
	data, hb := readFile(t, path), readFile(t, path+".head")
	l := openLog(t, path)
	if err := l.Append(r); err != nil {
		t.Fatal(err)
	}
	l.Close()
	line := readFile(t, path)[len(data):]
	writeFile(t, path, data)
	writeFile(t, path+".head", hb)
	return line[:len(line)-1]
}

func TestTornFinalLine(t *testing.T) {
	const n = 3
	dir := t.TempDir()
	orig := writeLog(t, dir, "orig.log", n)
	data, hb := readFile(t, orig), readFile(t, orig+".head")
	next := nextLine(t, orig, sample(7))

	tails := map[string][]byte{
		"zeros":    make([]byte, 4096),
		"one byte": next[:1],
		"no nl":    next,
	}
	for _, cut := range []int{2, 10, len(next) / 2, len(next) - 1} {
		tails[fmt.Sprint("cut ", cut)] = next[:cut]
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			writeFile(t, path, slices.Concat(data, tail))
			writeFile(t, path+".head", hb)
			_, err := Verify(path)
			brokenAt(t, err, path, n+1)
			if _, err := ReadAll(path); !errors.Is(err, ErrBroken) {
				t.Fatalf("ReadAll = %v, want ErrBroken", err)
			}

			l := openLog(t, path)
			if l.Recovered() != 1 {
				t.Errorf("Recovered() = %d, want 1", l.Recovered())
			}
			if got := readFile(t, path); !bytes.Equal(got, data) {
				t.Fatalf("after Open the log is %q, want the %d complete lines", got, n)
			}
			if err := l.Append(sample(7)); err != nil {
				t.Fatal(err)
			}
			if n2, err := Verify(path); err != nil || n2 != n+1 {
				t.Fatalf("Verify after recovery and append = %d, %v", n2, err)
			}
		})
	}

	// A final line the head file counts was acknowledged: losing its
	// newline is damage, not a torn write.
	t.Run("acknowledged", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		cut := data[:len(data)-1]
		writeFile(t, path, cut)
		writeFile(t, path+".head", hb)
		_, err := Verify(path)
		brokenAt(t, err, path, n)
		_, err = Open(path, nil)
		brokenAt(t, err, path, n)
		if got := readFile(t, path); !bytes.Equal(got, cut) {
			t.Fatal("Open changed a log it refused")
		}
	})
}

func TestOpenRefusesBroken(t *testing.T) {
	const n = 4
	orig := writeLog(t, t.TempDir(), "orig.log", n)
	data, hb := readFile(t, orig), readFile(t, orig+".head")
	lines := splitLines(data)
	tests := []struct {
		name     string
		log      []byte
		head     []byte
		wantLine int
	}{
		{"edited line", bytes.Replace(data, []byte("jti-c"), []byte("jti-x"), 1), hb, 3},
		{"deleted line", slices.Concat(lines[0], lines[2], lines[3]), hb, 2},
		{"deleted last line", slices.Concat(lines[:n-1]...), hb, n},
		{"missing head", data, nil, n + 1},
		{"garbage", []byte("hello\n"), hb, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			writeFile(t, path, tt.log)
			if tt.head != nil {
				writeFile(t, path+".head", tt.head)
			}
			l, err := Open(path, nil)
			if err == nil {
				l.Close()
				t.Fatal("Open succeeded")
			}
			brokenAt(t, err, path, tt.wantLine)
			if !bytes.Equal(readFile(t, path), tt.log) {
				t.Fatal("Open changed a log it refused")
			}
			if _, err := os.Stat(path + ".head"); (err == nil) != (tt.head != nil) {
				t.Fatalf("Open changed the head file of a log it refused: %v", err)
			}
			// The lock was released.
			if _, err := Open(path, nil); errors.Is(err, ErrLocked) {
				t.Fatal("Open left the file locked")
			}
		})
	}
}

// TestAppendAfterWriteFailure makes the log's file descriptor read-only,
// so that the next write fails.
func TestAppendAfterWriteFailure(t *testing.T) {
	path := writeLog(t, t.TempDir(), "audit.log", 2)
	l := openLog(t, path)
	good := l.f
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	l.f = ro
	err = l.Append(sample(0))
	var pe *fs.PathError
	if !errors.Is(err, ErrUnusable) || !errors.As(err, &pe) {
		t.Fatalf("Append with a failing write = %v, want ErrUnusable wrapping a *fs.PathError", err)
	}
	l.f = good // even with a good file, the Log stays unusable
	for range 2 {
		err := l.Append(sample(1))
		if !errors.Is(err, ErrUnusable) || !errors.As(err, &pe) {
			t.Fatalf("Append after a failed write = %v, want ErrUnusable with its cause", err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(path); err != nil || n != 2 {
		t.Fatalf("Verify = %d, %v; want 2, nil", n, err)
	}
	l2 := openLog(t, path)
	if err := l2.Append(sample(2)); err != nil {
		t.Fatalf("Append after reopening: %v", err)
	}
	if n, err := Verify(path); err != nil || n != 3 {
		t.Fatalf("Verify = %d, %v; want 3, nil", n, err)
	}
}

// TestAppendAfterHeadFailure makes replacing the head file fail after a
// line is durable: that Append succeeds (its line is durable; the head is
// only a checkpoint), the Log becomes unusable, the log keeps the line, and
// Open brings the head file up to date.
func TestAppendAfterHeadFailure(t *testing.T) {
	path := writeLog(t, t.TempDir(), "audit.log", 2)
	l := openLog(t, path)
	tmp := path + ".head.tmp"
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(sample(0)); err != nil {
		t.Fatalf("Append = %v, want nil: the line is durable", err)
	}
	// The background checkpoint fails too, or is about to.
	if err := l.checkpoint(); !errors.Is(err, ErrUnusable) {
		t.Fatalf("checkpoint = %v, want ErrUnusable", err)
	}
	if err := l.Append(sample(1)); !errors.Is(err, ErrUnusable) {
		t.Fatalf("Append after a failed checkpoint = %v, want ErrUnusable", err)
	}
	l.Close()
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(path); err != nil || n != 3 {
		t.Fatalf("Verify = %d, %v; want 3 (the head lags, which is allowed), nil", n, err)
	}
	l2 := openLog(t, path)
	if l2.Recovered() != 0 {
		t.Errorf("Recovered() = %d, want 0", l2.Recovered())
	}
	h, err := parseHead(readFile(t, path+".head"))
	if err != nil || h.Seq != 3 {
		t.Fatalf("head after Open = %+v, %v; want seq 3", h, err)
	}
	if err := l2.Append(sample(2)); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(path); err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4, nil", n, err)
	}
}

func TestBrokenError(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &BrokenError{Path: "/var/log/a.log", Line: 7, Reason: "seq is 9, want 7"})
	be := asBroken(t, err)
	if got, want := be.Error(), "/var/log/a.log:7: seq is 9, want 7"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func BenchmarkAppend(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	l := openLog(b, path)
	r := sample(0)
	for b.Loop() {
		if err := l.Append(r); err != nil {
			b.Fatal(err)
		}
	}
}
