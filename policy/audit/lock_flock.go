//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package audit

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on f, without waiting. The lock is
// released when f is closed.
func lockFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
	}); err != nil {
		return err
	}
	if errors.Is(ferr, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return ferr
}
