package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/frostmint/frostmint/coordinator/client"
	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
)

// Demo audience and scopes.
const (
	DemoAudience = "https://api.example.com"
	DemoScopes   = "read write"
)

// Demo starts a 2-of-3 cluster in dir (a temporary directory when empty),
// mints a token as the dev caller, verifies it against the served JWKS,
// prints the claims to out, and stops every process it started.
func Demo(ctx context.Context, dir string, out, logw io.Writer) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "frostmint-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "cluster")
	}
	say := func(format string, a ...any) { fmt.Fprintf(out, "==> "+format+"\n", a...) }
	say("starting a 2-of-3 cluster in %s: fresh dev CA, mTLS everywhere, keys by distributed key generation", dir)

	upCtx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan *Cluster, 1)
	upErr := make(chan error, 1)
	go func() {
		upErr <- Up(upCtx, Options{Dir: dir, Signers: 3, Threshold: 2,
			Log:   slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})),
			Ready: func(c *Cluster) { ready <- c }})
	}()
	var cl *Cluster
	select {
	case cl = <-ready:
	case err := <-upErr:
		if err == nil {
			err = errors.New("cluster stopped before it was ready")
		}
		return err
	}
	err := demoMintVerify(ctx, cl, say, out)
	say("stopping every process the demo started")
	stop()
	if uerr := <-upErr; uerr != nil && err == nil {
		err = uerr
	}
	if err == nil {
		say("done")
	}
	return err
}

func demoMintVerify(ctx context.Context, cl *Cluster, say func(string, ...any), out io.Writer) error {
	pids := make([]string, 0, len(cl.Signers))
	for _, s := range cl.Signers {
		pids = append(pids, fmt.Sprintf("signer %d at %s (pid %d)", s.ID, s.Addr, s.PID))
	}
	say("cluster ready: coordinator %s (pid %d); %s", cl.Coordinator, cl.CoordPID, strings.Join(pids, ", "))
	c, err := client.Dial(cl.Coordinator, cl.Caller)
	if err != nil {
		return err
	}
	defer c.Close()
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	say("minting as %s: audience %s, scope %q", CallerID, DemoAudience, DemoScopes)
	resp, err := c.Mint(mctx, DemoAudience, strings.Fields(DemoScopes), 0)
	if err != nil {
		return fmt.Errorf("mint: %w", err)
	}
	say("token signed by signers %v:", resp.GetSignerIds())
	fmt.Fprintln(out, resp.GetToken())
	say("verifying against %s", cl.JWKSURL)
	keys, err := jwks.Load(mctx, cl.JWKSURL, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	v, err := verifier.New(verifier.Config{Issuers: []verifier.Issuer{{Issuer: cl.Issuer, Keys: keys}}, Audience: DemoAudience})
	if err != nil {
		return err
	}
	claims, err := v.Verify(mctx, resp.GetToken(), strings.Fields(DemoScopes)...)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	b, _ := json.MarshalIndent(claims, "", "  ")
	say("verified; claims:")
	fmt.Fprintln(out, string(b))
	if _, err := v.Verify(mctx, resp.GetToken()); verifier.CodeOf(err) != verifier.CodeReplayed {
		return fmt.Errorf("replaying the token was not refused: %v", err)
	}
	say("replaying the same token is refused: %v", "replayed")
	for _, l := range cl.AuditLogs {
		n, err := audit.Verify(l)
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		say("audit log %s: %d records, chain intact", filepath.Base(l), n)
	}
	return nil
}
