package loadgen

import "syscall"

// procAttr makes a child die with the bench (even if the bench is killed)
// and keeps it out of the terminal's process group.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
}
