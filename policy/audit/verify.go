package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Genesis is the prev of a log's first line and the hash in the head file
// of an empty log: the lowercase hex SHA-256 of "frostmint audit v1".
const Genesis = "b859aafb4bdaefed7e38bacffb4d365f38b8bcb6fe8ae978608de88fedc42527"

// MaxLineSize is the longest line, in bytes and without its newline, that
// Append writes and Verify accepts.
const MaxLineSize = 1 << 20

// Decisions, the only values Record.Decision may take.
const (
	Allow = "allow"
	Deny  = "deny"
)

// ErrBroken is matched (errors.Is) by every *BrokenError: a log or head
// file that fails verification.
var ErrBroken = errors.New("audit: log is broken")

// BrokenError reports the first line of a log that is broken or missing.
type BrokenError struct {
	Path   string // the log file
	Line   int    // 1-based; one past the last line when lines are missing
	Reason string
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Reason)
}

// Unwrap returns ErrBroken, so that errors.Is(err, ErrBroken) holds.
func (e *BrokenError) Unwrap() error { return ErrBroken }

// entry is one line of a log.
type entry struct {
	Seq    int64  `json:"seq"`
	Prev   string `json:"prev"`
	Record Record `json:"record"`
}

// head is the content of a head file.
type head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

func headPath(path string) string { return path + ".head" }

func hashLine(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

func encodeHead(h head) []byte {
	b, err := json.Marshal(h)
	if err != nil {
		// An int64 and a string always encode.
		panic("audit: encoding head: " + err.Error())
	}
	return append(b, '\n')
}

// decodeStrict decodes b into v, refusing unknown fields, and then refuses
// b unless it is exactly the encoding of what it decoded to (encode(v)).
func decodeStrict(b []byte, v any, encode func() ([]byte, error)) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed: %v", err)
	}
	canon, err := encode()
	if err != nil {
		return fmt.Errorf("malformed: %v", err)
	}
	if !bytes.Equal(canon, b) {
		return errors.New("not in canonical form")
	}
	return nil
}

// parseLine decodes and checks one log line (without its newline),
// returning why it is broken, if it is. It does not check seq or prev.
func parseLine(line []byte) (entry, error) {
	var e entry
	if err := decodeStrict(line, &e, func() ([]byte, error) { return json.Marshal(e) }); err != nil {
		return e, err
	}
	if err := checkRecord(&e.Record); err != nil {
		return e, err
	}
	return e, nil
}

// checkRecord reports whether r may be in a log.
func checkRecord(r *Record) error {
	if r.Decision != Allow && r.Decision != Deny {
		return fmt.Errorf("decision %q is neither %q nor %q", r.Decision, Allow, Deny)
	}
	if r.Time.IsZero() {
		return errors.New("record has no time")
	}
	if _, off := r.Time.Zone(); off != 0 {
		return errors.New("record time is not in UTC")
	}
	return nil
}

func parseHead(b []byte) (head, error) {
	var h head
	if err := decodeStrict(b, &h, func() ([]byte, error) { return encodeHead(h), nil }); err != nil {
		return h, err
	}
	if h.Seq < 0 {
		return h, fmt.Errorf("negative seq %d", h.Seq)
	}
	if h.Seq == 0 && h.Hash != Genesis {
		return h, errors.New("seq 0 with a hash other than Genesis")
	}
	return h, nil
}

// readHead reads the head file of the log at path. A missing head file is
// not an error: ok is false.
func readHead(path string) (b []byte, ok bool, err error) {
	b, err = os.ReadFile(headPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("audit: %w", err)
	}
	return b, true, nil
}

var errTooLong = errors.New("line too long")

// readLine returns the next line of br without its newline. complete is
// false if the input ended before a newline; line is then the rest of the
// input. At the end of the input it returns io.EOF. A line longer than
// MaxLineSize bytes returns errTooLong.
func readLine(br *bufio.Reader) (line []byte, complete bool, err error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		n := len(buf) + len(frag)
		if err == nil {
			n-- // the newline
		}
		if n > MaxLineSize {
			return nil, false, errTooLong
		}
		buf = append(buf, frag...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], true, nil
		case errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
			if len(buf) == 0 {
				return nil, false, io.EOF
			}
			return buf, false, nil
		default:
			return nil, false, err
		}
	}
}

// scanResult describes a log that scan found intact, except possibly for
// a torn final line.
type scanResult struct {
	n       int    // complete, verified lines
	last    string // hash of line n, or Genesis if n is 0
	size    int64  // bytes taken by those n lines, newlines included
	torn    bool   // bytes without a newline follow line n
	headSeq int64  // the head file's seq, or -1 if there is none
}

// scan verifies the log read from r, whose head file content is hb (if
// haveHead), calling visit with each verified record in order. It returns
// a *BrokenError for any problem except a torn final line that the head
// file does not count, which it reports in the result. Other errors are
// read errors.
func scan(path string, r io.Reader, hb []byte, haveHead bool, visit func(Record)) (scanResult, error) {
	res := scanResult{last: Genesis, headSeq: -1}
	broken := func(line int, format string, args ...any) error {
		return &BrokenError{Path: path, Line: line, Reason: fmt.Sprintf(format, args...)}
	}

	var h head
	var headErr error
	if haveHead {
		h, headErr = parseHead(hb)
	}
	headOK := haveHead && headErr == nil
	headHash := "" // hash of line h.Seq, once read
	if headOK && h.Seq == 0 {
		headHash = Genesis
	}

	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, complete, err := readLine(br)
		if err == io.EOF {
			break
		}
		j := res.n + 1
		if errors.Is(err, errTooLong) {
			return res, broken(j, "longer than %d bytes", MaxLineSize)
		}
		if err != nil {
			return res, fmt.Errorf("audit: reading %s: %w", path, err)
		}
		if !complete {
			res.torn = true
			break
		}
		e, err := parseLine(line)
		if err != nil {
			return res, broken(j, "%v", err)
		}
		if e.Seq != int64(j) {
			return res, broken(j, "seq is %d, want %d", e.Seq, j)
		}
		sum := hashLine(line)
		if e.Prev != res.last {
			if j == 1 {
				return res, broken(j, "prev is not Genesis")
			}
			// Line j-1 was changed, or line j's prev was. Blame line j
			// only if what follows it shows that line j was changed;
			// otherwise (including when that cannot be told) line j-1.
			if contradicted(br, sum, j, h, headOK) {
				return res, broken(j, "prev does not match line %d", j-1)
			}
			return res, broken(j-1, "does not match the prev of line %d", j)
		}
		res.n, res.last = j, sum
		res.size += int64(len(line)) + 1
		if headOK && h.Seq == int64(j) {
			headHash = sum
		}
		if visit != nil {
			visit(e.Record)
		}
	}

	switch {
	case !haveHead:
		if res.n > 0 || res.torn {
			return res, broken(res.n+1, "missing: no head file %s", headPath(path))
		}
	case headErr != nil:
		return res, broken(res.n+1, "head file %s: %v", headPath(path), headErr)
	case h.Seq > int64(res.n):
		if res.torn {
			return res, broken(res.n+1, "no trailing newline, and the head file counts %d lines", h.Seq)
		}
		return res, broken(res.n+1, "missing: the head file counts %d lines", h.Seq)
	case h.Hash != headHash:
		return res, broken(int(h.Seq), "does not match the head file")
	default:
		res.headSeq = h.Seq
	}
	return res, nil
}

// contradicted reports whether what follows line j in br (line j+1, or the
// head file if line j is the last) positively shows that line j, whose
// hash is sum, has been changed. It consumes input from br.
func contradicted(br *bufio.Reader, sum string, j int, h head, headOK bool) bool {
	next, complete, err := readLine(br)
	if err == io.EOF {
		return headOK && h.Seq == int64(j) && h.Hash != sum
	}
	if err != nil || !complete {
		return false
	}
	e, err := parseLine(next)
	return err == nil && e.Prev != sum
}

// verifyFile verifies the log at path, reading its head file first so that
// a concurrent Append never makes the head look ahead of the log.
func verifyFile(path string, visit func(Record)) (int, error) {
	hb, haveHead, err := readHead(path)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	res, err := scan(path, f, hb, haveHead, visit)
	if err != nil {
		return 0, err
	}
	if res.torn {
		return 0, &BrokenError{Path: path, Line: res.n + 1,
			Reason: "no trailing newline (a torn write, which Open removes)"}
	}
	return res.n, nil
}

// Verify checks the log at path and its head file as described in the
// package documentation and returns the number of records.
//
// If the log is broken, the error is a *BrokenError naming the first broken
// or missing line (errors.Is(err, ErrBroken)). A non-empty log without a
// head file is broken at the line after its last. A final line without its
// newline is broken, although Open repairs it. Any other error is from
// reading the files; a missing log file gives an error matching
// fs.ErrNotExist.
func Verify(path string) (int, error) {
	return verifyFile(path, nil)
}

// ReadAll verifies the log at path, as Verify does, and returns its
// records in order. It fails exactly when Verify does, returning no
// records.
func ReadAll(path string) ([]Record, error) {
	var recs []Record
	if _, err := verifyFile(path, func(r Record) { recs = append(recs, r) }); err != nil {
		return nil, err
	}
	return recs, nil
}
