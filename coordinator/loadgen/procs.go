package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Daemon is one daemon of a running cluster.
type Daemon struct {
	Name string // "coordinator", "signer-1", "baseline", …
	// PID is its process id; 0 for a daemon running inside this process.
	PID int

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been reaped
}

// startProcess starts exe with args as daemon name, its output appended
// to logPath, with env added to this process's environment. The child is
// killed if this process dies (Pdeathsig), and runs in its own process
// group so that a terminal's Ctrl-C reaches only the bench, which then
// stops it in order.
func startProcess(name, exe, logPath string, env []string, args ...string) (*Daemon, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	defer lf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen: starting %s: %w", name, err)
	}
	d := &Daemon{Name: name, PID: cmd.Process.Pid, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is in the log
		close(d.exited)
	}()
	return d, nil
}

// running reports whether the daemon's process is still running.
func (d *Daemon) running() bool {
	if d.cmd == nil {
		return true
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// stop sends the process SIGTERM and waits up to grace for it to exit,
// then kills it. In-process daemons are stopped by their Cluster.
func (d *Daemon) stop(grace time.Duration) {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(grace):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100 on
// every Linux ABI.
const userHZ = 100

// ReadCPU reads the CPU time (user and system) process pid (0: this
// process) has used so far, from /proc/PID/stat, to 10 ms.
func ReadCPU(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("loadgen: %w", err)
	}
	return parseStat(b)
}

// parseStat reads utime and stime, the 14th and 15th fields, from the
// content of a /proc/PID/stat file. The second field, the command in
// parentheses, may hold spaces and parentheses: fields are counted after
// its last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("loadgen: /proc stat: no command")
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, errors.New("loadgen: /proc stat: too few fields")
	}
	var ticks int64
	for _, x := range f[11:13] {
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("loadgen: /proc stat: CPU time %q", x)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// Memory is a process's resident set, from /proc/PID/status.
type Memory struct {
	RSS  int64 // VmRSS, bytes
	Peak int64 // VmHWM: the highest RSS so far, bytes
}

// ReadMemory reads the resident set of process pid (0: this process).
func ReadMemory(pid int) (Memory, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Memory{}, fmt.Errorf("loadgen: %w", err)
	}
	return parseStatus(b)
}

// parseStatus reads VmRSS and VmHWM ("VmRSS:	  12345 kB") from the
// content of a /proc/PID/status file.
func parseStatus(b []byte) (Memory, error) {
	var m Memory
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.Peak
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return Memory{}, fmt.Errorf("loadgen: /proc status: %s is %q", name, rest)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("loadgen: /proc status: %s: %w", name, err)
		}
		*dst = kb << 10
		seen++
	}
	if seen != 2 {
		return Memory{}, errors.New("loadgen: /proc status has no VmRSS and VmHWM")
	}
	return m, nil
}
