package audit

import (
	"errors"
	"os"
	"syscall"
)

// fdatasync makes f's written data durable, with the metadata needed to
// read it back (its size), but not its times: for an append-only file that
// is all a record needs, and it spares the inode's time stamps a journal
// commit of their own.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if !errors.Is(serr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
