//go:build cgo && unix

package pivemu

import (
	"context"
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

	"github.com/go-piv/piv-go/v2/piv"
)

// Environment variables read by [Start].
const (
	// EnvRequire set to 1 turns a missing pcscd or vpcd into a test
	// failure instead of a skip; CI sets it so the hardware backend can
	// never be silently untested.
	EnvRequire = "FROSTMINT_REQUIRE_EMULATORS"
	// EnvVPCDAddr overrides DefaultVPCDAddr, the address of vpcd's first
	// reader; the second reader is expected on the next port.
	EnvVPCDAddr = "FROSTMINT_VPCD_ADDR"
)

// lockName is the file, in os.TempDir(), whose flock serialises every user
// of the vpcd readers on the machine.
const lockName = "frostmint-pivemu-vpcd.lock"

// vpcdReaderPrefix starts the PC/SC names of vpcd's readers.
const vpcdReaderPrefix = "Virtual PCD"

// Start inserts one emulated card per config (one factory-fresh card when
// none is given; at most two, the readers vpcd provides) and returns them
// once piv-go can open each, with [Card.Reader] naming its reader. The
// cards are pulled out when the test ends.
//
// Before that it makes sure the machine can run them: pcscd and the vpcd
// driver must be installed (apt-get install pcscd vsmartcard-vpcd
// libpcsclite-dev). When they are not, the test is skipped with a message
// saying so, or fails if FROSTMINT_REQUIRE_EMULATORS=1 (as in CI). When
// pcscd is not running, Start starts it as a daemon (this needs root, as
// in CI) and leaves it running for the next test; it never stops a pcscd.
//
// Concurrency: all test binaries on a machine share vpcd's readers (go
// test runs packages in parallel, as separate processes), so Start holds
// an exclusive flock on $TMPDIR/frostmint-pivemu-vpcd.lock from before it
// inserts the cards until pcscd has seen them pulled out. Another
// binary's Start blocks meanwhile, and tests inside one binary must not
// call Start in parallel with each other (they would wait for themselves:
// the lock is per open file, not per process). The kernel releases the
// flock if the test binary dies; the lock file then still says "busy",
// and the next holder waits for pcscd to notice the dead binary's cards
// are gone.
//
// Timing: pcscd polls vpcd's readers every 400 ms, so inserting a card
// takes up to about half a second and pulling it out removalGrace. While
// pcscd still believes a pulled card is present, connecting to it
// succeeds and the first APDU fails, and piv-go's Open then leaks its
// exclusive PC/SC handle (it closes neither handle nor context when
// SELECT fails), which would block the reader for the rest of the
// process. So Start never opens a reader it is not sure about: it probes
// only once pcscd has powered the new cards up, and waits removalGrace
// after pulling them.
func Start(t testing.TB, cfgs ...Config) []*Card {
	t.Helper()
	if len(cfgs) == 0 {
		cfgs = []Config{{}}
	}
	addrs, err := vpcdAddrs(len(cfgs))
	if err != nil {
		t.Fatal(err)
	}
	cards := make([]*Card, len(cfgs))
	for i, cfg := range cfgs {
		if cards[i], err = New(cfg); err != nil {
			t.Fatal(err)
		}
	}
	if msg := missingTools(); msg != "" {
		skipOrFail(t, msg)
	}
	unlock, err := lockVPCD()
	if err != nil {
		t.Fatal(err)
	}
	if msg := ensurePCSCD(t); msg != "" {
		unlock(false)
		skipOrFail(t, msg)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, c := range cards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serveUntilDone(ctx, addrs[i])
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		time.Sleep(removalGrace)
		unlock(true)
	})
	if err := findReaders(cards, 20*time.Second); err != nil {
		t.Fatalf("pivemu: %v", err)
	}
	return cards
}

// serveUntilDone keeps the card in its reader until ctx ends, plugging it
// back if the connection drops (vpcd not listening yet, pcscd restarted).
func (c *Card) serveUntilDone(ctx context.Context, addr string) {
	for ctx.Err() == nil {
		_ = c.Serve(ctx, addr)
		c.PowerOff()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("pivemu: %s (%s=1: emulators are required)", msg, EnvRequire)
	}
	t.Skipf("pivemu: %s; skipping (set %s=1 to fail instead)", msg, EnvRequire)
}

// vpcdAddrs returns the addresses of the first n vpcd readers.
func vpcdAddrs(n int) ([]string, error) {
	base := DefaultVPCDAddr
	if v := os.Getenv(EnvVPCDAddr); v != "" {
		base = v
	}
	host, port, err := net.SplitHostPort(base)
	if err != nil {
		return nil, fmt.Errorf("pivemu: vpcd address %q: %v", base, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("pivemu: vpcd address %q: bad port", base)
	}
	if n > 2 {
		return nil, fmt.Errorf("pivemu: %d cards asked, vpcd has 2 readers", n)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = net.JoinHostPort(host, strconv.Itoa(p+i))
	}
	return out, nil
}

// missingTools says what is not installed, or "".
func missingTools() string {
	const install = "install them with: apt-get install pcscd vsmartcard-vpcd libpcsclite-dev"
	if _, err := exec.LookPath("pcscd"); err != nil {
		if _, err := os.Stat("/usr/sbin/pcscd"); err != nil {
			return "pcscd is not installed; " + install
		}
	}
	confs, _ := filepath.Glob("/etc/reader.conf.d/*")
	for _, f := range confs {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "libifdvpcd") {
			return ""
		}
	}
	return "the vpcd reader driver is not configured (no /etc/reader.conf.d entry for libifdvpcd); " + install
}

// removalGrace is how long pcscd may take to notice a card was pulled
// out: one poll of the reader (400 ms) and some margin.
const removalGrace = 800 * time.Millisecond

// lockVPCD takes the machine-wide lock on the vpcd readers. The lock file
// says "idle" when the last holder pulled its cards out cleanly; otherwise
// (first use, or the last holder died) it waits removalGrace first. The
// returned function releases the lock, marking it idle when clean.
func lockVPCD() (func(clean bool), error) {
	path := filepath.Join(os.TempDir(), lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("pivemu: lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pivemu: lock %s: %w", path, err)
	}
	mark := func(s string) {
		_ = f.Truncate(0)
		_, _ = f.WriteAt([]byte(s), 0)
	}
	state := make([]byte, 16)
	n, _ := f.ReadAt(state, 0)
	if string(state[:n]) != "idle\n" {
		time.Sleep(removalGrace)
	}
	mark("busy\n")
	return func(clean bool) {
		if clean {
			mark("idle\n")
		}
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// virtualReaders lists the vpcd readers pcscd knows.
func virtualReaders() ([]string, error) {
	all, err := piv.Cards()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range all {
		if strings.HasPrefix(r, vpcdReaderPrefix) {
			out = append(out, r)
		}
	}
	return out, nil
}

// ensurePCSCD makes sure pcscd runs with the vpcd readers, starting it if
// it does not run. It returns why it cannot, or "".
func ensurePCSCD(t testing.TB) string {
	if rs, err := virtualReaders(); err == nil && len(rs) > 0 {
		return ""
	} else if err == nil {
		return "pcscd is running without the vpcd readers (was vsmartcard-vpcd installed after it started? restart pcscd)"
	}
	path, err := exec.LookPath("pcscd")
	if err != nil {
		path = "/usr/sbin/pcscd"
	}
	// Daemon mode: pcscd forks, detaches from our stdout and stderr (so
	// go test does not wait for it) and outlives this test binary, for the
	// next tests to share.
	// Its output goes to a file, not a pipe: a pipe would stay open in the
	// daemon and Run would wait for it forever.
	out, err := os.CreateTemp("", "pivemu-pcscd-*.log")
	if err != nil {
		return fmt.Sprintf("pcscd is not running and cannot be started: %v", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(path)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Sprintf("pcscd is not running and starting it failed (%v: %s); start it as root with `pcscd`", err, strings.TrimSpace(string(msg)))
	}
	t.Logf("pivemu: started pcscd (%s); it stays running", path)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if rs, err := virtualReaders(); err == nil && len(rs) > 0 {
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "pcscd started but shows no vpcd reader within 15s"
}

// findReaders waits until piv-go opens each card and records its reader,
// telling the cards apart by serial number.
func findReaders(cards []*Card, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	// Wait for pcscd to power every card up. Should it never (it missed a
	// removal and still thinks an earlier card is there, powered), probing
	// is safe anyway after a while: what it believes present is present.
	powerWait := time.Now().Add(3 * time.Second)
	for time.Now().Before(powerWait) && !allPowered(cards) {
		time.Sleep(20 * time.Millisecond)
	}
	left := len(cards)
	for left > 0 && time.Now().Before(deadline) {
		readers, _ := virtualReaders()
		for _, r := range readers {
			yk, err := piv.Open(r)
			if err != nil {
				continue
			}
			serial, err := yk.Serial()
			yk.Close()
			if err != nil {
				continue
			}
			for _, c := range cards {
				c.mu.Lock()
				if c.cfg.Serial == serial && c.reader == "" {
					c.reader = r
					left--
				}
				c.mu.Unlock()
			}
		}
		if left > 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if left > 0 {
		return fmt.Errorf("%d of %d emulated cards not seen by piv-go through pcscd within %v", left, len(cards), timeout)
	}
	return nil
}

func allPowered(cards []*Card) bool {
	for _, c := range cards {
		if !c.isPowered() {
			return false
		}
	}
	return true
}
