package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"
)

var (
	// ErrInvalidRecord is returned by Append for a record it will not
	// write. Nothing was written, and the Log remains usable.
	ErrInvalidRecord = errors.New("audit: invalid record")

	// ErrUnusable is returned by Append once a write to the log has
	// failed: the state of the file is unknown, so the Log refuses all
	// further appends. Close it and Open the file again.
	ErrUnusable = errors.New("audit: log unusable after a failed append")

	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("audit: log closed")

	// ErrLocked is returned by Open when another Log, in this process or
	// another, has the file open.
	ErrLocked = errors.New("audit: log in use by another Log")
)

// A Log appends records to one log file. It is safe for concurrent use.
type Log struct {
	path      string
	now       func() time.Time
	recovered int

	mu     sync.Mutex
	f      *os.File // the log, opened for appending and locked
	dir    *os.File // its directory, for fsync after renaming the head file
	seq    int64    // lines in the log
	last   string   // hash of line seq, or Genesis
	err    error    // the failure that made the Log unusable
	closed bool
}

// Open opens the log at path for appending, creating it with mode 0600 if
// it does not exist, and with it the head file path+".head". now is the
// clock for records without a time; nil means time.Now.
//
// An existing log is verified first, as by Verify, and a broken one is
// refused with its *BrokenError (errors.Is(err, ErrBroken)). Open repairs
// two states that an interrupted Append leaves and that are not
// tampering: a final line without its newline, never acknowledged, is
// truncated away and counted by Recovered (but if the head file counts
// that line, the log is refused); and a head file that does not yet count
// the last complete line is rewritten.
//
// Open fails with ErrLocked if another Log holds the file, and otherwise
// with the error from opening, reading, locking, truncating or syncing the
// files.
func Open(path string, now func() time.Time) (*Log, error) {
	if now == nil {
		now = time.Now
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{path: path, now: now, f: f}
	if err := l.open(); err != nil {
		f.Close()
		if l.dir != nil {
			l.dir.Close()
		}
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("audit: %s is not a regular file", l.path)
	}
	if err := lockFile(l.f); err != nil {
		return fmt.Errorf("audit: locking %s: %w", l.path, err)
	}
	if l.dir, err = os.Open(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	hb, haveHead, err := readHead(l.path)
	if err != nil {
		return err
	}
	res, err := scan(l.path, io.NewSectionReader(l.f, 0, math.MaxInt64), hb, haveHead, nil)
	if err != nil {
		return err
	}
	if res.torn {
		if err := l.f.Truncate(res.size); err != nil {
			return fmt.Errorf("audit: removing torn final line: %w", err)
		}
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("audit: removing torn final line: %w", err)
		}
		l.recovered = 1
	}
	l.seq, l.last = int64(res.n), res.last
	if res.headSeq != l.seq {
		// A new log, or an append interrupted before its head update.
		return l.writeHead()
	}
	// The log file may have just been created.
	if err := l.dir.Sync(); err != nil {
		return fmt.Errorf("audit: syncing %s: %w", l.dir.Name(), err)
	}
	return nil
}

// writeHead atomically replaces the head file with one for line l.seq.
func (l *Log) writeHead() error {
	hp := headPath(l.path)
	tmp := hp + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("audit: writing head file: %w", err)
	}
	_, err = f.Write(encodeHead(head{Seq: l.seq, Hash: l.last}))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, hp)
	}
	if err == nil {
		err = l.dir.Sync()
	}
	if err != nil {
		return fmt.Errorf("audit: writing head file: %w", err)
	}
	return nil
}

// Append writes r to the log as one line, fsyncs it and updates the head
// file, and only then returns nil. Records are stored in the order their
// Appends take effect. If r.Time is zero it is set from the Log's clock;
// it is stored in UTC.
//
// A non-nil error means the record may not be durable, and the caller must
// fail the operation it audits. Append fails with ErrInvalidRecord, having
// written nothing, if r.Decision is not Allow or Deny, if r.Time cannot be
// encoded (a year outside 0–9999), or if its line would be longer than
// MaxLineSize; the Log remains usable. It fails with ErrClosed after
// Close. If writing the line, syncing it or replacing the head file fails,
// Append returns an error wrapping both ErrUnusable and the cause, and
// every later Append fails with ErrUnusable: reopen the file to continue.
func (l *Log) Append(r Record) error {
	if r.Decision != Allow && r.Decision != Deny {
		return fmt.Errorf("%w: decision %q is neither %q nor %q", ErrInvalidRecord, r.Decision, Allow, Deny)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.err != nil {
		return fmt.Errorf("%w (earlier: %w)", ErrUnusable, l.err)
	}
	// Under the lock, so that times follow the order of the log.
	if r.Time.IsZero() {
		r.Time = l.now()
		if r.Time.IsZero() {
			return fmt.Errorf("%w: the clock returned the zero time", ErrInvalidRecord)
		}
	}
	r.Time = r.Time.UTC()
	line, err := json.Marshal(entry{Seq: l.seq + 1, Prev: l.last, Record: r})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	if len(line) > MaxLineSize {
		return fmt.Errorf("%w: line of %d bytes is longer than %d", ErrInvalidRecord, len(line), MaxLineSize)
	}
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		return l.fail(err)
	}
	if err := l.f.Sync(); err != nil {
		return l.fail(err)
	}
	l.seq, l.last = l.seq+1, hashLine(line)
	if err := l.writeHead(); err != nil {
		return l.fail(err)
	}
	return nil
}

func (l *Log) fail(err error) error {
	l.err = err
	return fmt.Errorf("%w: %w", ErrUnusable, err)
}

// Path returns the path of the log file, as given to Open.
func (l *Log) Path() string { return l.path }

// Recovered returns the number of torn final lines (0 or 1) that Open
// removed.
func (l *Log) Recovered() int { return l.recovered }

// Close closes the log file, releasing its lock. Appends after Close fail
// with ErrClosed. Every successful Append is already durable, so Close
// fails only if closing the files does; closing a closed Log returns nil.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	err := l.f.Close()
	if derr := l.dir.Close(); err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("audit: closing %s: %w", l.path, err)
	}
	return nil
}
