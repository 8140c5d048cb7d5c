//go:build !linux

package loadgen

import "syscall"

// procAttr keeps a child out of the terminal's process group.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
