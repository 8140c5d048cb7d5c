//go:build cgo

package keystore

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/miekg/pkcs11"
)

// p11Modules mirrors state a PKCS#11 library keeps once per process, which
// several backends on one library must therefore share:
//
//   - C_Initialize runs once per process: a second call fails with
//     CKR_CRYPTOKI_ALREADY_INITIALIZED, and C_Finalize ends the library for
//     every caller. The table counts the sessions open on each library and
//     finalizes it when the last one closes.
//   - The login state of a token is per process, shared by all its
//     sessions: C_Logout from one backend logs out every other. The table
//     counts the sessions relying on each token's login and logs out with
//     the last.
//
// It is the only package-level state of the backend.
var p11Modules = &p11ModuleTable{mods: map[string]*p11Module{}}

type p11ModuleTable struct {
	mu   sync.Mutex
	mods map[string]*p11Module // by the library's resolved path
}

// p11Module is one loaded PKCS#11 library. Its fields other than path and
// ctx are guarded by p11ModuleTable.mu.
//
// A library stays loaded once loaded, even with no session left: C_Finalize
// already releases the tokens, and unloading a library that pulls in a
// crypto library or vendor threads is a known source of crashes at exit.
type p11Module struct {
	path string // as the URI gave it, for messages
	ctx  *pkcs11.Ctx

	refs   int  // open sessions
	owned  bool // this table ran C_Initialize, so it runs C_Finalize
	logins map[uint]*p11Login
}

// p11Login is the user login on one token (by slot) of a module.
type p11Login struct {
	sessions int  // open sessions relying on the login
	owned    bool // this table ran C_Login, so it runs C_Logout
	// macKey and pinMAC let a later backend prove it was configured with
	// the same PIN without keeping the PIN: C_Login would answer
	// CKR_USER_ALREADY_LOGGED_IN without checking it.
	macKey, pinMAC []byte
}

// acquire returns the library at path, initialized, counting one more
// session on it. Symbolic links are resolved so that two spellings of one
// library share an entry, as the dynamic loader shares the library.
func (t *p11ModuleTable) acquire(path string) (*p11Module, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("%w: pkcs11: module-path: %w", ErrConfig, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.mods[resolved]
	if m == nil {
		ctx := pkcs11.New(resolved)
		if ctx == nil {
			return nil, fmt.Errorf("%w: pkcs11: cannot load %q as a PKCS#11 library", ErrConfig, path)
		}
		m = &p11Module{path: path, ctx: ctx}
		t.mods[resolved] = m
	}
	if m.refs == 0 {
		m.owned = true
		if err := m.ctx.Initialize(); err != nil {
			if !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
				return nil, fmt.Errorf("pkcs11: initializing %q: %w", path, err)
			}
			// Another component of the process initialized it; it
			// finalizes it too.
			m.owned = false
		}
		m.logins = map[uint]*p11Login{}
	}
	m.refs++
	return m, nil
}

// release counts one session less on m and finalizes the library when none
// is left.
func (t *p11ModuleTable) release(m *p11Module) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	m.refs--
	if m.refs > 0 || !m.owned {
		return nil
	}
	m.logins = nil
	if err := m.ctx.Finalize(); err != nil {
		return fmt.Errorf("pkcs11: finalizing %q: %w", m.path, err)
	}
	return nil
}

// login logs the user in to the token in slot through session h, or joins
// the login already made by another session of the process after checking
// the PIN is the same. Errors carry the token's answer, never the PIN.
func (t *p11ModuleTable) login(m *p11Module, slot uint, h pkcs11.SessionHandle, pin []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l := m.logins[slot]; l != nil {
		if !hmac.Equal(l.pinMAC, p11PINMAC(l.macKey, pin)) {
			return errors.New("the PIN differs from the one this process logged in to the token with")
		}
		l.sessions++
		return nil
	}
	l := &p11Login{sessions: 1, owned: true, macKey: make([]byte, sha256.Size)}
	if _, err := rand.Read(l.macKey); err != nil {
		return fmt.Errorf("randomness: %w", err)
	}
	l.pinMAC = p11PINMAC(l.macKey, pin)
	if err := m.ctx.Login(h, pkcs11.CKU_USER, p11PINString(pin)); err != nil {
		if !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
			return err
		}
		// Logged in by another component of the process, which has
		// checked the PIN and will log out.
		l.owned = false
	}
	m.logins[slot] = l
	return nil
}

// logout drops one session's claim on the login of the token in slot and
// logs out through session h when it was the last.
func (t *p11ModuleTable) logout(m *p11Module, slot uint, h pkcs11.SessionHandle) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := m.logins[slot]
	if l == nil {
		return nil
	}
	l.sessions--
	if l.sessions > 0 {
		return nil
	}
	delete(m.logins, slot)
	if !l.owned {
		return nil
	}
	if err := m.ctx.Logout(h); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)) {
		return err
	}
	return nil
}

func p11PINMAC(key, pin []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(pin)
	return h.Sum(nil)
}
