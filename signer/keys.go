package signer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/signer/keystore"
)

// epoch is one key epoch this signer holds a share of: its group and its
// unsealed share, in memory only, with the nonces made for it.
type epoch struct {
	kid    string
	group  *frost.Group
	signer *frost.Signer
}

// keyring holds the epochs, keyed by kid. It is safe for concurrent use.
type keyring struct {
	mu     sync.RWMutex
	epochs map[string]*epoch

	// syncMu runs one sync at a time (the rescan and a ceremony's commit
	// may overlap), so no share is unsealed twice, and guards failed.
	syncMu sync.Mutex
	// failed remembers the epochs that would not load, so that a broken
	// one is not unsealed again (a device operation, perhaps a PIN try or
	// a touch) at every rescan.
	failed map[string]*loadFailure
}

// loadFailure is why an epoch did not load, from which share file, and
// how many syncs pass it over before the next try: wait, doubling at each
// failure up to maxLoadWait, and back to none once the file changes.
type loadFailure struct {
	err        error
	share      os.FileInfo
	skip, wait int
}

// maxLoadWait bounds the syncs between two tries of an unchanged epoch
// that failed: about five minutes at the signer's 5-second rescan, so a
// transient failure (a device error, a touch not given) still heals.
const maxLoadWait = 64

// sameShare says whether fi is the share file that failed, unchanged.
func (f *loadFailure) sameShare(fi os.FileInfo) bool {
	return f != nil && fi != nil && f.share != nil && os.SameFile(fi, f.share) &&
		fi.ModTime().Equal(f.share.ModTime()) && fi.Size() == f.share.Size()
}

// get returns the epoch of kid.
func (k *keyring) get(kid string) (*epoch, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	e, ok := k.epochs[kid]
	return e, ok
}

// list returns the epochs sorted by kid.
func (k *keyring) list() []*epoch {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]*epoch, 0, len(k.epochs))
	for _, e := range k.epochs {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].kid < out[j].kid })
	return out
}

// closeAll wipes every share and nonce.
func (k *keyring) closeAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for kid, e := range k.epochs {
		e.signer.Close()
		delete(k.epochs, kid)
	}
}

// loadEpoch reads, unseals and checks signer id's share of epoch kid from
// dir. The unsealed bytes are wiped once the FROST signer holds the share.
func loadEpoch(dir, kid string, id uint16, sealer keystore.Sealer, maxNonces int) (*epoch, error) {
	g, err := keydir.ReadGroup(dir, kid)
	if err != nil {
		return nil, err
	}
	sealed, err := keydir.ReadSealed(dir, kid)
	if err != nil {
		return nil, err
	}
	secret, err := sealer.Unseal(sealed, keydir.Label(id, kid))
	if err != nil {
		return nil, fmt.Errorf("signer %d: unsealing the share of key %s: %w", id, kid, err)
	}
	fs, err := frost.NewSigner(g, secret, maxNonces)
	keystore.Wipe(secret)
	if err != nil {
		return nil, fmt.Errorf("signer %d: key %s: %w", id, kid, err)
	}
	if fs.ID() != id {
		fs.Close()
		return nil, fmt.Errorf("signer %d: the share of key %s is for participant %d", id, kid, fs.ID())
	}
	return &epoch{kid: kid, group: g, signer: fs}, nil
}

// sync makes the keyring match the keys dir: epochs that appeared are
// loaded, epochs that were retired are dropped and their shares wiped. An
// epoch that fails to load is logged and left out (the others still sign),
// and tried again after a growing number of syncs, or at the next sync once
// its share file changes; the error reports every epoch left out.
func (k *keyring) sync(dir string, id uint16, sealer keystore.Sealer, maxNonces int, log *slog.Logger) error {
	k.syncMu.Lock()
	defer k.syncMu.Unlock()
	kids, err := keydir.List(dir, true)
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(kids))
	for _, kid := range kids {
		want[kid] = true
	}
	for kid := range k.failed {
		if !want[kid] {
			delete(k.failed, kid)
		}
	}
	k.mu.Lock()
	for kid, e := range k.epochs {
		if !want[kid] {
			e.signer.Close()
			delete(k.epochs, kid)
			log.Info("key epoch retired; share dropped from memory", "kid", kid)
		}
	}
	var missing []string
	for _, kid := range kids {
		if _, ok := k.epochs[kid]; !ok {
			missing = append(missing, kid)
		}
	}
	k.mu.Unlock()

	var errs []error
	for _, kid := range missing {
		fi, _ := os.Stat(filepath.Join(dir, kid, keydir.ShareFile))
		f := k.failed[kid]
		if f.sameShare(fi) && f.skip > 0 {
			f.skip--
			errs = append(errs, f.err)
			continue
		}
		// Unsealing may need a device (and a touch): not under k.mu.
		e, err := loadEpoch(dir, kid, id, sealer, maxNonces)
		if err != nil {
			wait := 1
			if f.sameShare(fi) {
				wait = min(2*f.wait, maxLoadWait)
			}
			if k.failed == nil {
				k.failed = map[string]*loadFailure{}
			}
			k.failed[kid] = &loadFailure{err: err, share: fi, skip: wait, wait: wait}
			log.Error("cannot load key epoch", "kid", kid, "err", err, "retry_after_rescans", wait)
			errs = append(errs, err)
			continue
		}
		delete(k.failed, kid)
		k.mu.Lock()
		k.epochs[kid] = e
		k.mu.Unlock()
		log.Info("key epoch loaded", "kid", kid, "threshold", e.group.Public().Threshold, "signers", e.group.Public().MaxSigners)
	}
	return errors.Join(errs...)
}
