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
//
// Appends are group-committed: each Append encodes its line under mu and
// queues it; whichever waiting Append finds no sync under way becomes the
// leader, writes every queued line with one write, makes them durable with
// one fdatasync, and wakes the batch. So concurrent appends share one sync,
// and none returns before its own line is durable. The head file is a
// checkpoint rewritten after syncs by a background goroutine (see
// headLoop), off the appenders' path.
type Log struct {
	path      string
	now       func() time.Time
	recovered int
	// sync makes the log file's written data durable; fdatasync, replaced
	// by tests.
	sync func(*os.File) error

	mu   sync.Mutex
	cond sync.Cond // on mu; broadcast when a sync ends or the Log fails
	f    *os.File  // the log, opened for appending and locked
	dir  *os.File  // its directory, for fsync after renaming the head file
	seq  int64     // lines appended: durable, being synced or queued
	last string    // hash of line seq, or Genesis
	// queued holds the lines after those being synced, each with its
	// newline; spare is the previous batch's buffer, for reuse.
	queued, spare []byte
	syncing       bool   // a leader is writing and syncing a batch
	durable       int64  // lines written and synced
	durableHash   string // hash of line durable, or Genesis
	err           error  // the failure that made the Log unusable
	closed        bool

	// The head writer: kick asks it to checkpoint, stop ends it, done is
	// closed when it has ended.
	headMu  sync.Mutex // held while writing the head file
	headSeq int64      // lines the head file counts; under headMu
	// headQuiet and headEvery time background checkpoints (see
	// headInterval); headEvery 0 checkpoints at once.
	headQuiet, headEvery time.Duration
	kick                 chan struct{}
	stop                 chan struct{}
	done                 chan struct{}
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
	l := &Log{path: path, now: now, f: f, sync: fdatasync}
	l.cond.L = &l.mu
	if err := l.open(); err != nil {
		f.Close()
		if l.dir != nil {
			l.dir.Close()
		}
		return nil, err
	}
	l.durable, l.durableHash, l.headSeq = l.seq, l.last, l.seq
	l.kick, l.stop, l.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	l.headQuiet, l.headEvery = headQuiet, headInterval
	go l.headLoop()
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
		return l.writeHead(l.seq, l.last)
	}
	// The log file may have just been created.
	if err := l.dir.Sync(); err != nil {
		return fmt.Errorf("audit: syncing %s: %w", l.dir.Name(), err)
	}
	return nil
}

// writeHead atomically replaces the head file with one for line seq, whose
// hash is hash: it writes path+".head.tmp", fsyncs it (so that a crash
// never leaves an empty head behind the rename), renames it over the head
// file and fsyncs the directory. Callers hold headMu or own the Log alone
// (Open).
func (l *Log) writeHead(seq int64, hash string) error {
	hp := headPath(l.path)
	tmp := hp + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("audit: writing head file: %w", err)
	}
	_, err = f.Write(encodeHead(head{Seq: seq, Hash: hash}))
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

// Append writes r to the log as one line and returns nil only once that
// line is durable: written and fdatasynced, in one sync shared with the
// Appends that run at the same time (group commit). Records are stored in
// the order their Appends take effect. If r.Time is zero it is set from
// the Log's clock; it is stored in UTC. The head file catches up in the
// background (see the package documentation).
//
// A non-nil error means the record may not be durable, and the caller must
// fail the operation it audits. Append fails with ErrInvalidRecord, having
// written nothing, if r.Decision is not Allow or Deny, if r.Time cannot be
// encoded (a year outside 0–9999), or if its line would be longer than
// MaxLineSize; the Log remains usable. It fails with ErrClosed after
// Close. If writing or syncing its batch fails, or an earlier replacement
// of the head file failed, Append returns an error wrapping both
// ErrUnusable and the cause, and every later Append fails with
// ErrUnusable: reopen the file to continue.
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
	l.queued = append(append(l.queued, line...), '\n')
	l.seq, l.last = l.seq+1, hashLine(line)
	mine := l.seq
	for {
		if l.durable >= mine {
			return nil
		}
		if l.err != nil {
			return fmt.Errorf("%w: %w", ErrUnusable, l.err)
		}
		if !l.syncing {
			l.lead()
			continue
		}
		l.cond.Wait()
	}
}

// maxSpare bounds the batch buffer kept for reuse.
const maxSpare = 1 << 20

// lead writes and syncs every queued line as one batch. It is called with
// mu held and no sync under way; it releases mu during the I/O, so that
// more lines queue up for the next batch meanwhile, and wakes every waiter
// when done.
func (l *Log) lead() {
	l.syncing = true
	batch, seq, hash := l.queued, l.seq, l.last
	l.queued = l.spare[:0]
	l.mu.Unlock()
	_, err := l.f.Write(batch)
	if err == nil {
		err = l.sync(l.f)
	}
	l.mu.Lock()
	if cap(batch) <= maxSpare {
		l.spare = batch[:0]
	}
	l.syncing = false
	if err != nil {
		// The file now holds an unknown part of the batch.
		if l.err == nil {
			l.err = err
		}
	} else {
		l.durable, l.durableHash = seq, hash
		select {
		case l.kick <- struct{}{}:
		default: // a checkpoint is already due
		}
	}
	l.cond.Broadcast()
}

// When the background writer checkpoints. A checkpoint costs two fsyncs,
// a new inode and a rename: several times an append's own fdatasync in
// CPU and I/O. So the writer lets a burst of appends end first: it writes
// once no append has come for headQuiet, or headInterval after the first
// append since its last checkpoint, whichever is sooner. A lone append is
// checkpointed within a couple of milliseconds; under continuous load the
// head file is rewritten ten times a second and lags the durable lines by
// at most about that (see the package documentation for why that costs
// no detection).
const (
	headQuiet    = 2 * time.Millisecond
	headInterval = 100 * time.Millisecond
)

// headLoop checkpoints the head file after appends (see headQuiet), until
// stopped; Close writes the last checkpoint itself. A head file that
// cannot be replaced makes the Log unusable: appends fail from then on, as
// they would if the line itself could not be written.
func (l *Log) headLoop() {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		}
		if !l.waitQuiet() {
			return
		}
		_ = l.checkpoint() // a failure is kept in l.err
	}
}

// waitQuiet waits until no kick has come for l.headQuiet, or l.headEvery
// has passed; it reports false if the Log was stopped meanwhile.
func (l *Log) waitQuiet() bool {
	if l.headEvery <= 0 {
		return true
	}
	deadline := time.NewTimer(l.headEvery)
	defer deadline.Stop()
	quiet := time.NewTimer(l.headQuiet)
	defer quiet.Stop()
	for {
		select {
		case <-l.stop:
			return false
		case <-l.kick:
			quiet.Reset(l.headQuiet)
		case <-quiet.C:
			return true
		case <-deadline.C:
			return true
		}
	}
}

// checkpoint replaces the head file with one for the last durable line,
// unless it already counts it. The head file never counts a line that is
// not durable: that would make Open refuse the log after a crash. It does
// so even after a failed append made the Log unusable: the lines synced
// before it are intact.
func (l *Log) checkpoint() error {
	l.headMu.Lock()
	defer l.headMu.Unlock()
	l.mu.Lock()
	seq, hash := l.durable, l.durableHash
	l.mu.Unlock()
	if seq == l.headSeq {
		return nil
	}
	if err := l.writeHead(seq, hash); err != nil {
		l.mu.Lock()
		if l.err == nil {
			l.err = err
		}
		l.cond.Broadcast()
		l.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrUnusable, err)
	}
	l.headSeq = seq
	return nil
}

// Path returns the path of the log file, as given to Open.
func (l *Log) Path() string { return l.path }

// Recovered returns the number of torn final lines (0 or 1) that Open
// removed.
func (l *Log) Recovered() int { return l.recovered }

// Close waits for the Appends in flight, brings the head file up to date,
// and closes the log file, releasing its lock. Appends after Close fail
// with ErrClosed. Every successful Append is already durable, so Close
// fails only if the final head file cannot be written or the files cannot
// be closed; closing a closed Log returns nil.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	// Appends already queued finish: one of them leads each sync.
	for l.syncing || (l.durable < l.seq && l.err == nil) {
		l.cond.Wait()
	}
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	err := l.checkpoint()
	if cerr := l.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("audit: closing %s: %w", l.path, cerr)
	}
	if derr := l.dir.Close(); err == nil && derr != nil {
		err = fmt.Errorf("audit: closing %s: %w", l.path, derr)
	}
	return err
}
