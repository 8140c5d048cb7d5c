//go:build !linux

package signer

import "syscall"

// disableCoreDumps keeps unsealed shares out of core files (RLIMIT_CORE 0).
func disableCoreDumps() error {
	return syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0})
}
