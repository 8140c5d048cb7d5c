package policy

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Evaluator is what the coordinator and the signers need from a policy.
// *Engine and *Reloader implement it.
type Evaluator interface {
	Evaluate(ctx context.Context, in Input) (Decision, error)
	Hash() string
}

var (
	_ Evaluator = (*Engine)(nil)
	_ Evaluator = (*Reloader)(nil)
)

// Reloader keeps a policy Engine up to date with its files on disk.
//
// # Why
//
// Policy changes (a new repository allowed to deploy, a grant revoked) must
// reach every daemon without restarting it: a restarted signer has to unseal
// its key share again and loses its nonces. Each daemon watches its own copy
// of the policy; the coordinator and signers compare Hash values, so while
// a change rolls out a signer may refuse a coordinator that is ahead or
// behind it, and then agrees again once both have reloaded.
//
// # How
//
// Run polls the sources every interval and hashes their content (not their
// modification times, which copies, ConfigMap updates and coarse clocks do
// not reliably change). When the content changed it builds a new Engine
// exactly as New does, with all its checks: compilation, the bundle
// signature (WithBundle) and the self-check on sample requests. Only an
// Engine that passes them all replaces the current one, with one atomic
// pointer swap: a broken or unsigned update is logged and reported by
// LastError, and the last good policy stays in force (failing closed to the
// old policy rather than to no policy). Requests in flight finish with the
// Engine they started with; nothing is dropped or blocked by a reload.
//
// Evaluate and Hash each use the Engine current at the time of the call.
// To get a decision and the hash of the policy that made it, call Current
// once and use that Engine for both.
type Reloader struct {
	opts     []Option
	interval time.Duration
	log      *slog.Logger
	watched  []string // files and directories to poll; none for the embedded bundle

	current atomic.Pointer[Engine]
	lastErr atomic.Pointer[error]

	mu          sync.Mutex // serialises Run; guards fingerprint
	fingerprint string     // of the sources of the last build attempted
}

// NewReloader builds the first Engine with opts exactly as New does, and
// fails if New fails. interval is how often Run polls the policy sources;
// log (nil: discard) receives reloads and reload failures.
func NewReloader(ctx context.Context, interval time.Duration, log *slog.Logger, opts ...Option) (*Reloader, error) {
	if interval <= 0 {
		return nil, fmt.Errorf("%w: reload interval %v is not positive", ErrLoad, interval)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{
		opts:     slices.Clone(opts),
		interval: interval,
		log:      log,
	}
	for _, b := range o.bundles {
		r.watched = append(r.watched, b.dir)
	}
	if o.useFiles {
		r.watched = append(r.watched, o.paths...)
	}
	// Fingerprint before building: a change made while New runs is seen by
	// the next poll, at worst rebuilding the same policy once more.
	r.fingerprint = fingerprint(r.watched)
	e, err := New(ctx, opts...)
	if err != nil {
		return nil, err
	}
	r.current.Store(e)
	log.Info("policy compiled", "hash", e.Hash(), "decisions", e.memoState())
	return r, nil
}

// Current returns the Engine in force. It is never nil.
func (r *Reloader) Current() *Engine { return r.current.Load() }

// Evaluate evaluates in with the current Engine.
func (r *Reloader) Evaluate(ctx context.Context, in Input) (Decision, error) {
	return r.Current().Evaluate(ctx, in)
}

// Hash returns the current Engine's Hash.
func (r *Reloader) Hash() string { return r.Current().Hash() }

// LastError returns why the last reload failed, or nil if the last reload
// attempt succeeded (or none has been made). While it is non-nil the
// Engine from before the failed update is still in force.
func (r *Reloader) LastError() error {
	if p := r.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Run polls the policy sources every interval and reloads them when their
// content changes, until ctx is done; then it returns ctx.Err(). With the
// embedded default bundle there is nothing to poll and Run just waits for
// ctx. Reload failures are not returned: they are logged, and reported by
// LastError until a later reload succeeds.
func (r *Reloader) Run(ctx context.Context) error {
	if !r.mu.TryLock() {
		return errors.New("policy: Reloader.Run is already running")
	}
	defer r.mu.Unlock()

	if len(r.watched) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			r.poll(ctx)
		}
	}
}

// poll rebuilds the Engine if the sources changed since the last attempt.
// The caller holds r.mu.
func (r *Reloader) poll(ctx context.Context) {
	fp := fingerprint(r.watched)
	if fp == r.fingerprint {
		return
	}
	e, err := New(ctx, r.opts...)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down; try again with the next Run
		}
		r.fingerprint = fp // do not retry (and log) until the sources change again
		r.lastErr.Store(&err)
		r.log.Error("policy reload failed; keeping the current policy",
			"policy_hash", r.Current().Hash(), "err", err)
		return
	}
	r.fingerprint = fp
	r.lastErr.Store(nil)
	old := r.Current()
	if old.Hash() == e.Hash() {
		r.log.Debug("policy sources changed, policy unchanged", "policy_hash", old.Hash())
		return
	}
	r.current.Store(e)
	r.log.Info("policy reloaded", "old_hash", old.Hash(), "new_hash", e.Hash(), "decisions", e.memoState())
}

// fingerprint hashes the content of every file under paths, with its path.
// Directories are walked through os.DirFS, as the loaders do (so a
// directory given as a symbolic link, or holding links to files, is read
// through them), skipping nothing. A path that cannot be read contributes
// its error, so that its disappearance and its return are both changes.
func fingerprint(paths []string) string {
	h := sha256.New()
	var n [8]byte
	put := func(s ...[]byte) {
		for _, b := range s {
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
	}
	fail := func(p string, err error) { put([]byte(p), []byte("error"), []byte(err.Error())) }
	for _, root := range paths {
		put([]byte("root"), []byte(root))
		info, err := os.Stat(root)
		if err != nil {
			fail(root, err)
			continue
		}
		if !info.IsDir() {
			content, err := os.ReadFile(root)
			if err != nil {
				fail(root, err)
				continue
			}
			put([]byte(root), content)
			continue
		}
		fsys := os.DirFS(root)
		_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				fail(p, err)
				return nil
			}
			if d.IsDir() {
				return nil
			}
			content, err := fs.ReadFile(fsys, p)
			if err != nil {
				fail(p, err)
				return nil
			}
			put([]byte(p), content)
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))
}
