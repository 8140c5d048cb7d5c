package signer

import "syscall"

// disableCoreDumps keeps unsealed shares out of core files and away from
// debuggers of the same user: RLIMIT_CORE 0, and PR_SET_DUMPABLE 0 (which
// also forbids ptrace attach and makes /proc/self/mem unreadable to other
// processes of the user).
func disableCoreDumps() error {
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0}); err != nil {
		return err
	}
	const prSetDumpable = 4
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		return errno
	}
	return nil
}
