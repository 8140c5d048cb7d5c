// Package softhsmtest gives tests a real PKCS#11 token: SoftHSM2 with a
// throw-away configuration and token directory, and tokens initialised
// with random labels and PINs.
//
// SoftHSM2 reads its configuration (SOFTHSM2_CONF) when the library is
// initialised, once per process, so every token a test uses must come from
// the same [HSM]: create one with [NewHSM] and as many tokens as needed
// with [HSM.NewToken]. A library is initialised again, with the next test's
// configuration, only once everything that opened it has closed; tests must
// close what they open (t.Cleanup) before they end.
//
// When SoftHSM2 is not installed, the test is skipped, unless the
// environment sets FROSTMINT_REQUIRE_EMULATORS=1 (CI does): then it fails.
package softhsmtest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// RequireEnv names the environment variable that turns a missing emulator
// into a failure rather than a skip.
const RequireEnv = "FROSTMINT_REQUIRE_EMULATORS"

// ModuleEnv names an environment variable giving the path of
// libsofthsm2.so, for systems that install it somewhere unusual.
const ModuleEnv = "FROSTMINT_SOFTHSM2_MODULE"

// HSM is one SoftHSM2 configuration with its own token directory, selected
// for the test process through SOFTHSM2_CONF.
type HSM struct {
	Module   string // absolute path of libsofthsm2.so
	Conf     string // the softhsm2.conf file
	TokenDir string
	util     string // softhsm2-util
}

// Token is an initialised token of an HSM.
type Token struct {
	HSM     *HSM
	Label   string
	Serial  string
	PIN     string // the user PIN, also in PINFile
	PINFile string // mode 0600
}

// New returns a token of a new HSM: the short form for tests that need one.
func New(tb testing.TB) *Token {
	tb.Helper()
	return NewHSM(tb).NewToken(tb)
}

// NewHSM writes a SoftHSM2 configuration and token directory under
// tb.TempDir and points SOFTHSM2_CONF at it for the rest of the test (so
// the test cannot be parallel). It skips or fails the test when SoftHSM2 is
// missing; see the package documentation.
func NewHSM(tb testing.TB) *HSM {
	tb.Helper()
	module, util, err := find()
	if err != nil {
		unavailable(tb, os.Getenv(RequireEnv) == "1", err)
	}
	dir := tb.TempDir()
	h := &HSM{Module: module, Conf: filepath.Join(dir, "softhsm2.conf"), TokenDir: filepath.Join(dir, "tokens"), util: util}
	if err := os.Mkdir(h.TokenDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", h.TokenDir)
	if err := os.WriteFile(h.Conf, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("SOFTHSM2_CONF", h.Conf)
	return h
}

// NewToken initialises a token with a random label, user PIN and SO PIN,
// and writes the PIN to a 0600 file.
func (h *HSM) NewToken(tb testing.TB) *Token {
	tb.Helper()
	return h.NewTokenLabelled(tb, "fm-"+randomHex(tb, 8))
}

// NewTokenLabelled is NewToken with a chosen label, which may repeat
// another token's to test telling tokens apart by serial.
func (h *HSM) NewTokenLabelled(tb testing.TB, label string) *Token {
	tb.Helper()
	tk := &Token{HSM: h, Label: label, PIN: randomHex(tb, 8)}
	before := serials(h.run(tb, "--show-slots"), label)
	h.run(tb, "--init-token", "--free", "--label", tk.Label, "--pin", tk.PIN, "--so-pin", randomHex(tb, 8))
	for _, s := range serials(h.run(tb, "--show-slots"), label) {
		if !slices.Contains(before, s) {
			tk.Serial = s
		}
	}
	if tk.Serial == "" {
		tb.Fatalf("softhsm2-util --show-slots does not list the new token %q with a serial", label)
	}
	tk.PINFile = filepath.Join(filepath.Dir(h.Conf), "token-"+tk.Serial+".pin")
	if err := os.WriteFile(tk.PINFile, []byte(tk.PIN+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return tk
}

// URI is the pkcs11: keystore URI of the key labelled object on the token,
// reading the PIN from PINFile.
func (tk *Token) URI(object string) string {
	return tk.URIWithPIN(object, "file:"+tk.PINFile)
}

// URIWithPIN is URI with another pin-source (env:NAME or file:PATH).
func (tk *Token) URIWithPIN(object, pinSource string) string {
	return "pkcs11:token=" + escape(tk.Label, pathChars) + ";object=" + escape(object, pathChars) +
		"?module-path=" + escape(tk.HSM.Module, queryChars) + "&pin-source=" + escape(pinSource, queryChars)
}

// run runs softhsm2-util against the HSM's configuration and returns its
// output; a failure fails the test.
func (h *HSM) run(tb testing.TB, args ...string) []byte {
	tb.Helper()
	cmd := exec.CommandContext(tb.Context(), h.util, args...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+h.Conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("softhsm2-util %s: %v\n%s", args[0], err, out)
	}
	return out
}

// serials lists the serial numbers of the tokens labelled label in the
// output of softhsm2-util --show-slots, where each token's "Serial number"
// line precedes its "Label" line.
func serials(showSlots []byte, label string) []string {
	var serial string
	var found []string
	sc := bufio.NewScanner(bytes.NewReader(showSlots))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Serial number":
			serial = strings.TrimSpace(v)
		case "Label":
			if strings.TrimSpace(v) == label && serial != "" {
				found = append(found, serial)
			}
			serial = ""
		}
	}
	return found
}

// find locates libsofthsm2.so and softhsm2-util.
func find() (module, util string, err error) {
	util, err = exec.LookPath("softhsm2-util")
	if err != nil {
		return "", "", fmt.Errorf("softhsm2-util not found in PATH: %w", err)
	}
	candidates := []string{
		"/usr/lib/softhsm/libsofthsm2.so",                   // Debian, Ubuntu
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",  // Debian, Ubuntu (multiarch)
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", // Debian, Ubuntu on arm64
		"/usr/lib64/pkcs11/libsofthsm2.so",                  // Fedora, RHEL
		"/usr/lib/pkcs11/libsofthsm2.so",                    // Alpine, Arch
		"/usr/local/lib/softhsm/libsofthsm2.so",             // from source, FreeBSD
		"/opt/homebrew/lib/softhsm/libsofthsm2.so",          // Homebrew on Apple silicon
	}
	if p := os.Getenv(ModuleEnv); p != "" {
		candidates = []string{p}
	}
	for _, p := range candidates {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, util, nil
		}
	}
	return "", "", fmt.Errorf("libsofthsm2.so not found (looked at %s; set %s to its path)", strings.Join(candidates, ", "), ModuleEnv)
}

// unavailable skips the test for a missing SoftHSM2, or fails it when
// required is set: CI must not pass by skipping.
func unavailable(tb testing.TB, required bool, err error) {
	tb.Helper()
	if required {
		tb.Fatalf("SoftHSM2 is required (%s=1) but unusable: %v", RequireEnv, err)
	}
	tb.Skipf("SoftHSM2 unavailable, skipping (apt-get install softhsm2; set %s=1 to fail instead): %v", RequireEnv, err)
}

func randomHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Characters RFC 7512 allows unescaped in path and query attribute values,
// beside the unreserved ones.
const (
	pathChars  = ":[]@!$'()*+,="
	queryChars = ":[]@!$'()*+,;/?|"
)

// escape percent-encodes s for a pkcs11: URI attribute value.
func escape(s, allowed string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~", c) >= 0 || strings.IndexByte(allowed, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
