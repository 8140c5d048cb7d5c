package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// addSeeds adds valid logs of a few lengths, and damaged variants, to f's
// corpus as (log, head, haveHead).
func addSeeds(f *testing.F) {
	dir := f.TempDir()
	for _, n := range []int{0, 1, 3} {
		path := writeLog(f, dir, "seed"+string(rune('0'+n))+".log", n)
		data, hb := readFile(f, path), readFile(f, path+".head")
		f.Add(data, hb, true)
		f.Add(data, hb, false)
		if n > 0 {
			f.Add(data[:len(data)-1], hb, true)
			f.Add(append(bytes.Clone(data), `{"seq":`...), hb, true)
			f.Add(data[bytes.IndexByte(data, '\n')+1:], hb, true)
		}
	}
	f.Add([]byte("\n"), []byte("{}\n"), true)
	f.Add([]byte(`{"seq":1,"prev":"`+Genesis+`","record":{"time":"2026-01-01T00:00:00+02:00","daemon":"d","decision":"deny"}}`+"\n"),
		[]byte(`{"seq":0,"hash":"`+Genesis+`"}`+"\n"), true)
}

// writeFuzzLog writes a log to dir/audit.log and, if haveHead, its head
// file, removing any other files an earlier input left, and returns the
// log's path. Inputs run one at a time in a process, so they can share dir
// (t.TempDir per input would make fuzzing several times slower).
func writeFuzzLog(t *testing.T, dir string, data, hb []byte, haveHead bool) string {
	path := filepath.Join(dir, "audit.log")
	clean(t, path)
	writeFile(t, path, data)
	if haveHead {
		writeFile(t, path+".head", hb)
	}
	return path
}

// clean removes the log at path and its head file, if they exist.
func clean(t *testing.T, path string) {
	for _, p := range []string{path, path + ".head"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

// FuzzVerify checks that Verify never panics, that it names a line within
// the file (or the one after it), and that whatever verifies reads back
// with ReadAll, and appending those records to a new log yields a log that
// verifies, reads back the same and is the very same bytes.
func FuzzVerify(f *testing.F) {
	addSeeds(f)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data, hb []byte, haveHead bool) {
		path := writeFuzzLog(t, dir, data, hb, haveHead)
		n, err := Verify(path)
		if err != nil {
			var be *BrokenError
			if !errors.As(err, &be) || !errors.Is(err, ErrBroken) {
				t.Fatalf("Verify = %v, want a *BrokenError", err)
			}
			lines := bytes.Count(data, []byte("\n"))
			if len(data) > 0 && data[len(data)-1] != '\n' {
				lines++
			}
			if be.Path != path || be.Line < 1 || be.Line > lines+1 {
				t.Fatalf("Verify = %v for a file of %d lines", err, lines)
			}
			if _, err2 := ReadAll(path); !errors.Is(err2, ErrBroken) {
				t.Fatalf("Verify = %v but ReadAll = %v", err, err2)
			}
			return
		}
		recs, err := ReadAll(path)
		if err != nil || len(recs) != n {
			t.Fatalf("Verify = %d, nil but ReadAll = %d records, %v", n, len(recs), err)
		}

		cp := filepath.Join(dir, "copy.log")
		clean(t, cp)
		l, err := Open(cp, func() time.Time { panic("every verified record has a time") })
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if err := l.Append(r); err != nil {
				t.Fatalf("Append of a verified record %+v: %v", r, err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		recs2, err := ReadAll(cp)
		if err != nil {
			t.Fatalf("ReadAll of the copy: %v", err)
		}
		if !sameRecords(recs, recs2) {
			t.Fatalf("records changed in the round trip:\n%+v\n%+v", recs, recs2)
		}
		if got := readFile(t, cp); !bytes.Equal(got, data) {
			t.Fatalf("copy differs from the original:\n%q\n%q", got, data)
		}
	})
}

// FuzzOpen checks that Open either refuses a log with ErrBroken, changing
// neither file, or opens it so that appending works and the result
// verifies; and that it repairs exactly the logs that fail Verify only for
// a torn final line.
func FuzzOpen(f *testing.F) {
	addSeeds(f)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data, hb []byte, haveHead bool) {
		path := writeFuzzLog(t, dir, data, hb, haveHead)
		n, verr := Verify(path)
		l, err := Open(path, newClock().now)
		if err != nil {
			if !errors.Is(err, ErrBroken) {
				t.Fatalf("Open = %v, want ErrBroken", err)
			}
			if verr == nil {
				t.Fatalf("Verify succeeded but Open = %v", err)
			}
			if !bytes.Equal(readFile(t, path), data) {
				t.Fatal("Open changed a log it refused")
			}
			got, err := os.ReadFile(path + ".head")
			if haveHead && !bytes.Equal(got, hb) || !haveHead && err == nil {
				t.Fatal("Open changed the head file of a log it refused")
			}
			return
		}
		defer l.Close()
		switch {
		case verr == nil && l.Recovered() != 0:
			t.Fatalf("Recovered() = %d for a log that verifies", l.Recovered())
		case verr != nil && l.Recovered() != 1:
			t.Fatalf("Open accepted a log that fails Verify (%v) without recovering it", verr)
		}
		if verr != nil {
			// A torn final line after n complete lines.
			if n, err = Verify(path); err != nil {
				t.Fatalf("Verify after recovery: %v", err)
			}
		}
		if err := l.Append(sample(0)); err != nil {
			t.Fatal(err)
		}
		if got, err := Verify(path); err != nil || got != n+1 {
			t.Fatalf("Verify after Append = %d, %v; want %d", got, err, n+1)
		}
	})
}

// FuzzParseLine checks the line parser in memory: it never panics, and a
// line it accepts is the canonical encoding of what it decoded.
func FuzzParseLine(f *testing.F) {
	path := writeLog(f, f.TempDir(), "seed.log", 3)
	for _, line := range splitLines(readFile(f, path)) {
		f.Add(line[:len(line)-1])
	}
	f.Add([]byte(`{"seq":1,"prev":"","record":{"time":"2026-01-01T00:00:00Z","daemon":"","decision":"deny"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := parseLine(line)
		if err != nil {
			return
		}
		b, err := json.Marshal(e)
		if err != nil || !bytes.Equal(b, line) {
			t.Fatalf("parseLine accepted %q, which encodes as %q (%v)", line, b, err)
		}
		if err := checkRecord(&e.Record); err != nil {
			t.Fatalf("parseLine accepted a record checkRecord refuses: %v", err)
		}
	})
}

// FuzzParseHead checks the head parser in memory: it never panics, and a
// head it accepts is the canonical encoding of what it decoded.
func FuzzParseHead(f *testing.F) {
	path := writeLog(f, f.TempDir(), "seed.log", 1)
	f.Add(readFile(f, path+".head"))
	f.Add(encodeHead(head{Seq: 0, Hash: Genesis}))
	f.Add([]byte(`{"seq":-1,"hash":""}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHead(b)
		if err != nil {
			return
		}
		if got := encodeHead(h); !bytes.Equal(got, b) {
			t.Fatalf("parseHead accepted %q, which encodes as %q", b, got)
		}
		if h.Seq < 0 || h.Seq == 0 && h.Hash != Genesis {
			t.Fatalf("parseHead accepted %+v", h)
		}
	})
}
