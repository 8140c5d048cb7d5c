package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignersDieAndRejoin must run last: it kills signers.
func TestSignersDieAndRejoin(t *testing.T) {
	kill := func(id uint16) {
		p, err := os.FindProcess(cluster.Signers[id-1].PID)
		if err != nil {
			t.Fatal(err)
		}
		p.Signal(syscall.SIGKILL)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && p.Signal(syscall.Signal(0)) == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	mint(t) // warm pools
	kill(3)
	for i := 0; i < 3; i++ {
		mint(t)
	}
	kill(2)
	start := time.Now()
	_, errOut, code := cli(t, "", "mint", "--cluster", filepath.Join(dir, "cluster.json"), "--audience", "a", "--scope", "read")
	if code != 1 || !strings.Contains(errOut, "no quorum") || !strings.Contains(errOut, "signer 2") || !strings.Contains(errOut, "signer 3") {
		t.Fatalf("with two signers dead: exit %d, stderr %q", code, errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("failing without quorum took %s; want fast", d)
	}
	// Restart both; they come back with their sealed shares and the
	// coordinator uses them again without a restart of its own.
	var restarted []*exec.Cmd
	for _, id := range []string{"2", "3"} {
		cmd := exec.Command(bin, "dev", "signer", "--dir", dir, "--id", id)
		lf, _ := os.Create(filepath.Join(dir, "logs", "signer-"+id+"-restart.log"))
		cmd.Stdout, cmd.Stderr = lf, lf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		restarted = append(restarted, cmd)
	}
	t.Cleanup(func() {
		for _, c := range restarted {
			c.Process.Signal(syscall.SIGTERM)
			c.Wait()
		}
	})
	// Signer 1 must also be left out: with 2 and 3 back, a mint needs one of them.
	kill(1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, errOut, code := cli(t, "", "mint", "--cluster", filepath.Join(dir, "cluster.json"), "--audience", "a", "--scope", "read")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted signers did not rejoin: %s", errOut)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
