// Package redistest runs a real, throwaway redis-server for tests: one
// child process per call to [Start], on a free loopback port, in the
// test's temporary directory, stopped when the test ends.
//
// Tests that depend on Redis run against the real server rather than a
// fake, because what they check (atomicity of SET NX, expiry, what a
// client sees while the server is down, slow, read-only or out of memory)
// is the server's behaviour. A [Server] can be stopped, killed, paused and
// restarted on the same port, for outage tests.
//
// redis-server must be on PATH (Debian: apt-get install redis-server). If
// it is not, [Start] fails the test with a message saying so, unless the
// environment sets FROSTMINT_SKIP_REDIS=1, in which case it skips the test.
//
// The package takes a [testing.TB] so that tests of other packages (e2e,
// gateway) can use it too.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SkipEnv is the environment variable that, set to 1, makes [Start] skip
// the test instead of failing it when redis-server is not installed.
const SkipEnv = "FROSTMINT_SKIP_REDIS"

const (
	// startTimeout bounds how long a server may take to answer PING.
	startTimeout = 15 * time.Second
	// stopTimeout bounds how long a server may take to exit on SIGTERM
	// before it is killed.
	stopTimeout = 5 * time.Second
)

// Options configures a [Server].
type Options struct {
	// Persistent makes the server keep its keys across [Server.Stop],
	// [Server.Kill] and [Server.Restart]: it writes an append-only file,
	// fsynced after every write (appendonly yes, appendfsync always). By
	// default the server keeps nothing on disk, and a restart empties it.
	Persistent bool
	// Password, if set, is required of clients (requirepass).
	Password string
	// Args are extra arguments of redis-server, as "--name", "value" pairs.
	Args []string
}

// Server is a redis-server child process. Its methods are safe for
// concurrent use; they fail the test (t.Fatal) on error, so call them from
// the test's goroutine.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	opts Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	runs int
}

// Start starts a redis-server that keeps nothing on disk, and waits until
// it answers PING. The server is stopped when the test ends. See
// [StartWith].
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a redis-server configured by opts, on a free port of
// 127.0.0.1 and in a directory of its own under t.TempDir(), and waits
// until it answers PING. The server is stopped (SIGTERM, then SIGKILL) when
// the test ends.
//
// It fails the test if redis-server is not on PATH (or skips it, if
// FROSTMINT_SKIP_REDIS=1), or if the server does not start.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(SkipEnv) == "1" {
			t.Skipf("redis-server not installed, and %s=1: skipping", SkipEnv)
		}
		t.Fatalf("redis-server is not installed (%v): these tests need a real Redis; "+
			"install it (Debian: apt-get install redis-server), or set %s=1 to skip them", err, SkipEnv)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), opts: opts}
	t.Cleanup(s.stop) // registered after TempDir's, so it runs before it
	// A free port may be taken between choosing it and the server binding
	// it: try a few.
	var lastErr error
	for range 5 {
		if s.port, err = freePort(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// Addr returns the server's address, 127.0.0.1:port. It does not change
// across restarts.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Dir returns the server's working directory (its log, and its
// append-only files if it is persistent).
func (s *Server) Dir() string { return s.dir }

// Stop stops the server gracefully (SIGTERM, which makes a persistent
// server flush its append-only file), killing it if it does not exit in
// time, and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	s.signal(syscall.SIGTERM)
}

// Kill kills the server (SIGKILL), as a crash would, and waits for it to
// exit. A persistent server loses no acknowledged write: it fsyncs every
// write before answering it. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.t.Helper()
	s.signal(syscall.SIGKILL)
}

// Pause suspends the server (SIGSTOP): it still accepts connections (the
// kernel does) but answers nothing, like a server that hangs. [Server.Resume]
// undoes it; Stop, Kill and Restart resume it first.
func (s *Server) Pause() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatal("redistest: Pause of a stopped server")
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("redistest: SIGSTOP: %v", err)
	}
}

// Resume resumes a paused server (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatal("redistest: Resume of a stopped server")
	}
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("redistest: SIGCONT: %v", err)
	}
}

// Restart stops the server if it is running (as [Stop]) and starts it
// again, on the same port and in the same directory, and waits until it
// answers PING. A persistent server comes back with its keys; one that is
// not comes back empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("server already running")
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", "", // stdout, which goes to the log file below
		"--loglevel", "warning",
		"--save", "",
	}
	if s.opts.Persistent {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	args = append(args, s.opts.Args...)

	s.runs++
	logPath := filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.runs))
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		if ping(s.Addr()) {
			s.cmd, s.done = cmd, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited (%v) at start; its log:\n%s",
				s.port, cmd.ProcessState, tail(logPath))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING within %s; its log:\n%s",
				s.port, startTimeout, tail(logPath))
		}
	}
}

// signal sends sig to the server (after SIGCONT, should it be paused) and
// waits for it to exit, killing it if it takes longer than stopTimeout.
func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	p := s.cmd.Process
	_ = p.Signal(syscall.SIGCONT)
	if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("redistest: %v: %v", sig, err)
	}
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.t.Logf("redistest: redis-server did not exit within %s of %v: killing it", stopTimeout, sig)
		_ = p.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// stop is the cleanup: it must not call t.Fatal.
func (s *Server) stop() { s.signal(syscall.SIGTERM) }

// ping reports whether a server at addr answers PING, with PONG or with
// an authentication error (a server with a password is up too). LOADING
// (a persistent server replaying its file) is not an answer.
func ping(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return false
	}
	return line == "+PONG\r\n" || strings.HasPrefix(line, "-NOAUTH")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the end of the file at path, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
