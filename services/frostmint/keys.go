package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/verifier/token"
)

// keys is `frostmint keys list|activate|retire`: key epochs on disk (see
// package keydir). A running coordinator or signer picks changes up by
// itself within seconds.
func (e env) keys(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, "usage: frostmint keys list|activate|retire --keys-dir DIR [KID]\n")
		return exitUsage
	}
	switch args[0] {
	case "list":
		return e.keysList(args[1:])
	case "activate":
		return e.keysActivate(args[1:])
	case "retire":
		return e.keysRetire(args[1:])
	}
	fmt.Fprintf(e.stderr, "frostmint keys: unknown command %q\n", args[0])
	return exitUsage
}

func (e env) keysList(args []string) int {
	fs := e.flags("keys list", "keys list --keys-dir DIR")
	dir := fs.String("keys-dir", "", "a coordinator's or signer's keys `dir` (required)")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if *dir == "" || fs.NArg() > 0 {
		return e.usageErr(fs, "--keys-dir is required")
	}
	kids, err := keydir.List(*dir, false)
	if err != nil {
		fmt.Fprintf(e.stderr, "error: %v\n", err)
		return exitRejected
	}
	if len(kids) == 0 {
		fmt.Fprintf(e.stdout, "%s: no key epoch (run the key ceremony)\n", *dir)
		return exitOK
	}
	active, _ := keydir.Active(*dir)
	for _, kid := range kids {
		g, err := keydir.ReadGroup(*dir, kid)
		if err != nil {
			fmt.Fprintf(e.stdout, "%s  unreadable: %v\n", kid, err)
			continue
		}
		pub := g.Public()
		state := "pending"
		switch at, deact := keydir.Deactivated(*dir, kid); {
		case kid == active:
			state = "active"
		case deact:
			state = "deactivated " + at.UTC().Format(time.RFC3339)
		}
		share := ""
		if _, err := os.Stat(filepath.Join(*dir, kid, keydir.ShareFile)); err == nil {
			share = ", sealed share here"
		}
		fmt.Fprintf(e.stdout, "%s  %d-of-%d  %s%s\n", kid, pub.Threshold, pub.MaxSigners, state, share)
	}
	return exitOK
}

func (e env) keysActivate(args []string) int {
	fs := e.flags("keys activate", "keys activate --keys-dir DIR KID")
	dir := fs.String("keys-dir", "", "the coordinator's keys `dir` (required)")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if *dir == "" || fs.NArg() != 1 {
		return e.usageErr(fs, "--keys-dir and one KID are required")
	}
	kid := fs.Arg(0)
	if err := keydir.Activate(*dir, kid, time.Now()); err != nil {
		fmt.Fprintf(e.stderr, "error: %v\n", err)
		return exitRejected
	}
	fmt.Fprintf(e.stdout, "%s is active: new tokens carry it; the previous key stays in the JWKS until its last token has expired.\n", kid)
	return exitOK
}

func (e env) keysRetire(args []string) int {
	fs := e.flags("keys retire", "keys retire --keys-dir DIR [--force] KID")
	dir := fs.String("keys-dir", "", "a coordinator's or signer's keys `dir` (required)")
	force := fs.Bool("force", false, "retire even if tokens of this key may still be valid")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if *dir == "" || fs.NArg() != 1 {
		return e.usageErr(fs, "--keys-dir and one KID are required")
	}
	kid := fs.Arg(0)
	if active, err := keydir.Active(*dir); err == nil && active == kid {
		// Only a coordinator's dir names an active key.
		if _, err := os.Stat(filepath.Join(*dir, kid, keydir.ShareFile)); err != nil {
			fmt.Fprintf(e.stderr, "error: %s is the active key: activate another first\n", kid)
			return exitRejected
		}
	}
	if at, ok := keydir.Deactivated(*dir, kid); ok && !*force {
		if until := at.Add(token.MaxTTL + time.Minute); time.Now().Before(until) {
			fmt.Fprintf(e.stderr, "error: tokens of %s may be valid until %s; retire after that, or pass --force\n", kid, until.UTC().Format(time.RFC3339))
			return exitRejected
		}
	}
	if err := keydir.Retire(*dir, kid); err != nil {
		fmt.Fprintf(e.stderr, "error: %v\n", err)
		return exitRejected
	}
	fmt.Fprintf(e.stdout, "%s retired: its sealed share (if any) was overwritten and removed; a running signer drops it from memory within seconds.\n", kid)
	return exitOK
}

// guardian is `frostmint guardian run --config FILE`: a signer daemon on
// an engineer's workstation (its config has a guardian section).
func (e env) guardian(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, "usage: frostmint guardian run|enroll ...\n")
		return exitUsage
	}
	switch args[0] {
	case "run":
		return e.daemon(ctx, "guardian run", args[1:], func(ctx context.Context, path string, log *slog.Logger) error {
			cfg, err := signer.LoadConfig(path)
			if err != nil {
				return err
			}
			if cfg.Guardian == nil {
				return fmt.Errorf("%s has no guardian section: use frostmint signer for a signer the coordinator dials", path)
			}
			s, err := signer.New(cfg, log)
			if err != nil {
				return err
			}
			return s.Run(ctx)
		})
	case "enroll":
		return e.guardianEnroll(ctx, args[1:])
	}
	fmt.Fprintf(e.stderr, "frostmint guardian: unknown command %q\n", args[0])
	return exitUsage
}
