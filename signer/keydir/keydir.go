// Package keydir is the on-disk layout of key epochs, shared by the
// signers, the coordinator, the dev key generation and the key ceremony.
//
// A key epoch is one FROST group key, made by one key generation (a
// ceremony). Rotating the key means a new ceremony, hence a new epoch with
// a new kid, while the old epoch's tokens are still being verified. Each
// epoch lives in its own directory named by its kid (the RFC 7638
// thumbprint of the group key):
//
//	<keys dir>/<kid>/group.json       the public group (frost.PublicGroup)
//	<keys dir>/<kid>/share.sealed     a signer's share, sealed by its keystore
//	<keys dir>/<kid>/transcript.json  the ceremony transcript, when there is one
//	<keys dir>/<kid>/deactivated      when the coordinator stopped minting with it
//	<keys dir>/active                 the coordinator's active kid
//
// A signer's keys dir holds group and share; a coordinator's holds groups
// only, plus the active marker. An epoch directory is created complete or
// not at all (written under a temporary name, then renamed), so a crash
// never leaves half an epoch. Retiring an epoch overwrites its sealed share
// before removing it.
package keydir

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/jwks"
)

// File names inside an epoch directory.
const (
	GroupFile       = "group.json"
	ShareFile       = "share.sealed"
	TranscriptFile  = "transcript.json"
	DeactivatedFile = "deactivated"
	activeFile      = "active"
)

// Errors; returned errors wrap one of them.
var (
	// ErrExists means an epoch with that kid is already there.
	ErrExists = errors.New("keydir: epoch already exists")
	// ErrNotFound means there is no such epoch.
	ErrNotFound = errors.New("keydir: no such epoch")
)

// Label is the keystore label of signer id's share of epoch kid: a sealed
// share cannot be passed off as another signer's or another epoch's.
func Label(id uint16, kid string) string { return fmt.Sprintf("frostmint-share-%d@%s", id, kid) }

// KeyID returns the kid of a public group.
func KeyID(pub frost.PublicGroup) (string, error) { return jwks.KeyID(pub.PublicKey) }

// Epoch is what [Write] stores.
type Epoch struct {
	// Public is the group.
	Public frost.PublicGroup
	// Sealed is the sealed share; nil for a coordinator's epoch.
	Sealed []byte
	// Transcript is the ceremony transcript, if any.
	Transcript []byte
}

// Write creates the directory of a new epoch in dir, atomically, and
// returns its kid. It refuses an epoch that exists ([ErrExists]).
func Write(dir string, e Epoch) (string, error) {
	kid, err := KeyID(e.Public)
	if err != nil {
		return "", err
	}
	if _, err := frost.NewGroup(e.Public); err != nil {
		return "", err
	}
	final := filepath.Join(dir, kid)
	if _, err := os.Stat(final); err == nil {
		return "", fmt.Errorf("%w: %s", ErrExists, kid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("keydir: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".new-"+kid+"-")
	if err != nil {
		return "", fmt.Errorf("keydir: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	group, err := json.MarshalIndent(e.Public, "", "  ")
	if err != nil {
		return "", err
	}
	files := []struct {
		name string
		data []byte
	}{{GroupFile, group}, {ShareFile, e.Sealed}, {TranscriptFile, e.Transcript}}
	for _, f := range files {
		if f.data == nil {
			continue
		}
		if err := writeSync(filepath.Join(tmp, f.name), f.data); err != nil {
			return "", err
		}
	}
	if err := syncDir(tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Stat(final); serr == nil {
			return "", fmt.Errorf("%w: %s", ErrExists, kid)
		}
		return "", fmt.Errorf("keydir: %w", err)
	}
	return kid, syncDir(dir)
}

// WriteShare seals secret (signer id's share of pub) with sealer and writes
// the epoch; it returns the kid.
func WriteShare(dir string, id uint16, sealer keystore.Sealer, secret []byte, pub frost.PublicGroup, transcript []byte) (string, error) {
	kid, err := KeyID(pub)
	if err != nil {
		return "", err
	}
	sealed, err := sealer.Seal(secret, Label(id, kid))
	if err != nil {
		return "", fmt.Errorf("keydir: sealing the share of epoch %s: %w", kid, err)
	}
	return Write(dir, Epoch{Public: pub, Sealed: sealed, Transcript: transcript})
}

// List returns the kids of the complete epochs in dir, sorted; with
// withShare, only those that hold a sealed share. A missing dir is empty.
func List(dir string, withShare bool) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keydir: %w", err)
	}
	var kids []string
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), GroupFile)); err != nil {
			continue
		}
		if withShare {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), ShareFile)); err != nil {
				continue
			}
		}
		kids = append(kids, e.Name())
	}
	sort.Strings(kids)
	return kids, nil
}

// ReadGroup reads epoch kid's group and checks that its key is that kid.
func ReadGroup(dir, kid string) (*frost.Group, error) {
	if err := checkKid(kid); err != nil {
		return nil, err
	}
	g, err := frost.ReadGroupFile(filepath.Join(dir, kid, GroupFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, kid)
	}
	if err != nil {
		return nil, err
	}
	got, err := KeyID(g.Public())
	if err != nil {
		return nil, err
	}
	if got != kid {
		return nil, fmt.Errorf("keydir: epoch directory %s holds the group of key %s", kid, got)
	}
	return g, nil
}

// ReadSealed reads epoch kid's sealed share.
func ReadSealed(dir, kid string) ([]byte, error) {
	if err := checkKid(kid); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, kid, ShareFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no share", ErrNotFound, kid)
	}
	if err != nil {
		return nil, fmt.Errorf("keydir: %w", err)
	}
	return b, nil
}

// Active returns the active kid of a coordinator's keys dir: the one named
// by the active marker, or the only epoch when there is one and no
// marker. It fails when it cannot tell.
func Active(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, activeFile))
	if err == nil {
		kid := strings.TrimSpace(string(b))
		if _, err := ReadGroup(dir, kid); err != nil {
			return "", fmt.Errorf("keydir: the active key %s: %w", kid, err)
		}
		return kid, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("keydir: %w", err)
	}
	kids, err := List(dir, false)
	if err != nil {
		return "", err
	}
	switch len(kids) {
	case 0:
		return "", fmt.Errorf("%w: %s holds no key epoch (run the key ceremony)", ErrNotFound, dir)
	case 1:
		return kids[0], nil
	default:
		return "", fmt.Errorf("keydir: %s holds %d epochs and no active marker: run frostmint keys activate", dir, len(kids))
	}
}

// Activate makes kid the active epoch of a coordinator's keys dir, and
// records when the previous one stopped being active, so that its key is
// published until its last token has expired.
func Activate(dir, kid string, now time.Time) error {
	if _, err := ReadGroup(dir, kid); err != nil {
		return err
	}
	if prev, err := Active(dir); err == nil && prev != kid {
		if err := writeSync(filepath.Join(dir, prev, DeactivatedFile), []byte(strconv.FormatInt(now.Unix(), 10)+"\n")); err != nil {
			return err
		}
	}
	// A key made active again is not deactivated any more.
	if err := os.Remove(filepath.Join(dir, kid, DeactivatedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keydir: %w", err)
	}
	tmp := filepath.Join(dir, ".active.tmp")
	if err := writeSync(tmp, []byte(kid+"\n")); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, activeFile)); err != nil {
		return fmt.Errorf("keydir: %w", err)
	}
	return syncDir(dir)
}

// EnsureActive writes the active marker when there is none and dir holds
// exactly one epoch, so that a later epoch (a rotation) never makes the
// choice ambiguous. It returns the active kid, as [Active].
func EnsureActive(dir string, now time.Time) (string, error) {
	kid, err := Active(dir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, activeFile)); errors.Is(err, fs.ErrNotExist) {
		if err := Activate(dir, kid, now); err != nil {
			return "", err
		}
	}
	return kid, nil
}

// Deactivated returns when epoch kid stopped being active, if it did.
func Deactivated(dir, kid string) (time.Time, bool) {
	b, err := os.ReadFile(filepath.Join(dir, kid, DeactivatedFile))
	if err != nil {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		// Unreadable: keep publishing the key. Dropping it early would make
		// verifiers refuse good tokens; publishing it longer costs nothing.
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// Retire removes epoch kid from dir. Its sealed share, if any, is first
// overwritten with random bytes and synced, so that the file's old blocks
// no longer hold it on an ordinary filesystem.
func Retire(dir, kid string) error {
	if err := checkKid(kid); err != nil {
		return err
	}
	edir := filepath.Join(dir, kid)
	if _, err := os.Stat(edir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, kid)
	}
	share := filepath.Join(edir, ShareFile)
	if fi, err := os.Stat(share); err == nil {
		junk := make([]byte, fi.Size())
		if _, err := rand.Read(junk); err != nil {
			return err
		}
		f, err := os.OpenFile(share, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("keydir: wiping the share: %w", err)
		}
		_, werr := f.WriteAt(junk, 0)
		serr := f.Sync()
		f.Close()
		if werr != nil || serr != nil {
			return fmt.Errorf("keydir: wiping the share: %w", errors.Join(werr, serr))
		}
	}
	// Rename first so a crash mid-removal leaves no half epoch behind a
	// valid name.
	gone := filepath.Join(dir, ".retired-"+kid)
	if err := os.Rename(edir, gone); err != nil {
		return fmt.Errorf("keydir: %w", err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("keydir: %w", err)
	}
	return syncDir(dir)
}

// checkKid refuses a kid that could name another path.
func checkKid(kid string) error {
	if kid == "" || len(kid) > 64 || strings.Trim(kid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return fmt.Errorf("%w: %q is not a key id", ErrNotFound, kid)
	}
	return nil
}

func writeSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("keydir: %w", err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("keydir: writing %s: %w", filepath.Base(path), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keydir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keydir: syncing %s: %w", dir, err)
	}
	return nil
}
