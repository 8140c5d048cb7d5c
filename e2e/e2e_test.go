// Package e2e starts the real frostmint binaries on loopback — a 2-of-3
// dev cluster with mutual TLS and keys from a distributed key generation —
// and checks the system from the outside: minting, verifying (also with an
// independent JOSE library), every verifier rejection, signers that refuse
// on their own, callers without valid certificates, nonce reuse, and
// signers dying and rejoining.
package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/coordinator/devcluster"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	"github.com/frostmint/frostmint/verifier/evidence/oidctest"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/token"
)

var (
	bin     string // the frostmint binary
	cluster *devcluster.Cluster
	dir     string
	// Local OIDC issuers standing in for GitHub Actions and a Kubernetes
	// API server: real keys, real signed tokens, served discovery + JWKS.
	github, kube *oidctest.Issuer
)

// OIDC audience the dev cluster expects.
const oidcAudience = "frostmint"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "frostmint-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin = filepath.Join(tmp, "frostmint")
	build := exec.Command("go", "build", "-o", bin, "github.com/frostmint/frostmint/services/frostmint")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building frostmint:", err)
		return 1
	}
	if github, err = oidctest.Start("RS256"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer github.Close()
	if kube, err = oidctest.Start("ES256"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer kube.Close()
	dir = filepath.Join(tmp, "cluster")
	up := exec.Command(bin, "dev", "up", "--dir", dir,
		"--trust-oidc", "name=github,issuer="+github.URL+",audience="+oidcAudience,
		"--trust-oidc", "name=k8s,issuer="+kube.URL+",audience="+oidcAudience)
	var upOut bytes.Buffer
	up.Stdout, up.Stderr = &upOut, &upOut
	if err := up.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		up.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { up.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			up.Process.Kill()
			fmt.Fprintln(os.Stderr, "e2e: dev up did not stop within 15s")
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if c, err := devcluster.ReadCluster(filepath.Join(dir, "cluster.json")); err == nil {
			cluster = c
			break
		}
		if time.Now().After(deadline) || up.ProcessState != nil {
			fmt.Fprintf(os.Stderr, "e2e: cluster did not come up:\n%s\n", upOut.String())
			dumpLogs()
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
	code := m.Run()
	if code != 0 {
		dumpLogs()
	}
	return code
}

func dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		fmt.Fprintf(os.Stderr, "---- %s\n%s\n", l, b)
	}
}

// cli runs the frostmint binary.
func cli(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &o, &e
	err := cmd.Run()
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		return o.String(), e.String(), xe.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

func mint(t *testing.T, args ...string) string {
	t.Helper()
	a := append([]string{"mint", "--cluster", filepath.Join(dir, "cluster.json"), "--audience", devcluster.DemoAudience, "--scope", "read write"}, args...)
	out, errOut, code := cli(t, "", a...)
	if code != 0 {
		t.Fatalf("mint exited %d: %s", code, errOut)
	}
	tok := strings.TrimSpace(out)
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("mint printed %q, want one compact token", out)
	}
	return tok
}

func verifyArgs(extra ...string) []string {
	return append([]string{"verify", "--jwks", cluster.JWKSURL, "--issuer", cluster.Issuer, "--audience", devcluster.DemoAudience}, extra...)
}

func TestMintVerify(t *testing.T) {
	tok := mint(t)
	out, errOut, code := cli(t, tok, verifyArgs("--scope", "read", "-")...)
	if code != 0 {
		t.Fatalf("verify exited %d: %s", code, errOut)
	}
	var c token.Claims
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("verify printed %q: %v", out, err)
	}
	if c.Subject != devcluster.CallerID || c.ClientID != devcluster.CallerID || c.Audience != devcluster.DemoAudience || c.Scope != "read write" {
		t.Fatalf("claims %+v", c)
	}
	if c.TTL() != token.DefaultTTL {
		t.Fatalf("ttl %s, want default %s", c.TTL(), token.DefaultTTL)
	}
}

func fetchJWKS(t *testing.T) []byte {
	t.Helper()
	resp, err := http.Get(cluster.JWKSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("jwks: %d", resp.StatusCode)
	}
	return b
}

// TestIndependentVerifiers checks a minted token with go-jose against the
// served JWKS and with crypto/ed25519 directly.
func TestIndependentVerifiers(t *testing.T) {
	tok := mint(t)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(fetchJWKS(t), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys in JWKS", len(set.Keys))
	}
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in JWKS", kid)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("go-jose: %v", err)
	}
	var c map[string]any
	json.Unmarshal(payload, &c)
	if c["sub"] != devcluster.CallerID {
		t.Fatalf("go-jose payload %v", c)
	}
	pub := keys[0].Key.(ed25519.PublicKey)
	i := strings.LastIndexByte(tok, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if !ed25519.Verify(pub, []byte(tok[:i]), sig) {
		t.Fatal("crypto/ed25519 rejects the token")
	}
	// RFC 7638 thumbprint is the kid.
	tp, _ := keys[0].Thumbprint(cryptoSHA256)
	if base64.RawURLEncoding.EncodeToString(tp) != kid {
		t.Fatal("kid is not the RFC 7638 thumbprint")
	}
}

func TestDiscovery(t *testing.T) {
	resp, err := http.Get(cluster.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d["issuer"] != cluster.Issuer || d["jwks_uri"] != cluster.JWKSURL {
		t.Fatalf("discovery %v", d)
	}
}

func TestVerifierRejections(t *testing.T) {
	good := mint(t)
	short := mint(t, "--ttl", "1s")
	parts := strings.Split(good, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	tampered := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	noneHdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"x"}`))
	time.Sleep(3100 * time.Millisecond) // let the 1s token expire beyond a 1s leeway
	for _, tc := range []struct {
		name, tok string
		args      []string
		code      string
	}{
		{"malformed", "not-a-token", nil, "malformed"},
		{"alg none", noneHdr + "." + parts[1] + "." + parts[2], nil, "bad_header"},
		{"bad signature", tampered, nil, "bad_signature"},
		{"wrong audience", good, []string{"--audience", "https://other.example.com"}, "wrong_audience"},
		{"untrusted issuer", good, []string{"--issuer", "https://evil.example.com"}, "untrusted_issuer"},
		{"insufficient scope", good, []string{"--scope", "admin"}, "insufficient_scope"},
		{"expired", short, []string{"--leeway", "1s"}, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := verifyArgs()
			// later flags win
			args = append(args, tc.args...)
			args = append(args, tc.tok)
			_, errOut, code := cli(t, "", args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1 (stderr %q)", code, errOut)
			}
			if !strings.HasPrefix(errOut, "error: "+tc.code+": ") {
				t.Fatalf("stderr %q, want error: %s: …", errOut, tc.code)
			}
		})
	}
	t.Run("usage", func(t *testing.T) {
		if _, _, code := cli(t, "", "verify", "--jwks", cluster.JWKSURL); code != 2 {
			t.Fatalf("exit %d, want 2", code)
		}
	})
}

// dialAs dials addr presenting the given certificate (nil: none).
func dialAs(t *testing.T, addr string, files *mtls.Files, serverID string) *grpc.ClientConn {
	t.Helper()
	var tc *tls.Config
	if files != nil {
		var err error
		tc, err = mtls.ClientConfig(*files)
		if err != nil {
			t.Fatal(err)
		}
	} else {
		c := filesOf("caller")
		base, err := mtls.ClientConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		tc = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: base.RootCAs}
	}
	tc.ServerName = "localhost"
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func filesOf(name string) mtls.Files {
	return mtls.Files{Cert: filepath.Join(dir, "certs", name+".crt"), Key: filepath.Join(dir, "certs", name+".key"), CA: filepath.Join(dir, "ca.crt")}
}

func TestCallerWithoutValidCertificate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := &mintv1.MintRequest{Audience: devcluster.DemoAudience, Scopes: []string{"read"}}
	// No client certificate at all.
	_, err := mintv1.NewMintServiceClient(dialAs(t, cluster.Coordinator, nil, "")).Mint(ctx, req)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no certificate: got %v, want Unauthenticated", err)
	}
	// A certificate from another CA: the handshake fails.
	other := t.TempDir()
	ca, err := mtls.NewDevCA("rogue", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ca.Issue(other, "rogue", mtls.Leaf{ID: devcluster.CallerID, DNSNames: []string{"localhost"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f.CA = filepath.Join(dir, "ca.crt") // trust the real coordinator
	_, err = mintv1.NewMintServiceClient(dialAs(t, cluster.Coordinator, &f, "")).Mint(ctx, req)
	if err == nil || status.Code(err) == codes.OK {
		t.Fatal("a certificate from a rogue CA minted a token")
	}
	// Status needs no certificate.
	st, err := mintv1.NewMintServiceClient(dialAs(t, cluster.Coordinator, nil, "")).GetStatus(ctx, &mintv1.GetStatusRequest{})
	if err != nil || st.GetThreshold() != 2 || len(st.GetSigners()) != 3 {
		t.Fatalf("status: %v %v", st, err)
	}
}

func TestMintRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ttl above cap", []string{"--audience", "a", "--scope", "read", "--ttl", "16m"}, "error: invalid_argument: "},
		{"denied by policy", []string{"--audience", "a", "--scope", "not-allowed!"}, "error: permission_denied: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := cli(t, "", append([]string{"mint", "--cluster", filepath.Join(dir, "cluster.json")}, tc.args...)...)
			if code != 1 || !strings.HasPrefix(errOut, tc.want) {
				t.Fatalf("exit %d stderr %q", code, errOut)
			}
		})
	}
}
