package signer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/frostmint/frostmint/policy"
)

// PolicySource says where a daemon's policy comes from. The coordinator and
// every signer must load the same policy: signers refuse a request whose
// policy hash differs from theirs.
type PolicySource struct {
	// Files lists Rego files or directories; empty (and no Bundle) means
	// the embedded default policy.
	Files []string `json:"files,omitempty"`
	// Bundle is an OPA bundle directory, instead of Files.
	Bundle string `json:"bundle,omitempty"`
	// Verify, with Bundle, requires an OPA bundle signature by this key.
	Verify *BundleKey `json:"verify,omitempty"`
	// Reload is how often the files are checked for changes (default 10s;
	// a change that fails to compile or verify is refused and the old
	// policy stays).
	Reload Duration `json:"reload,omitempty"`
}

// BundleKey is the public key that signs policy bundles.
type BundleKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`  // EdDSA or ES256
	PublicKey string `json:"public_key"` // PEM file
	Scope     string `json:"scope,omitempty"`
}

// Validate reports every problem at once.
func (p PolicySource) Validate() error {
	var errs []error
	if len(p.Files) > 0 && p.Bundle != "" {
		errs = append(errs, errors.New("policy: files and bundle are exclusive"))
	}
	if p.Verify != nil && p.Bundle == "" {
		errs = append(errs, errors.New("policy.verify needs policy.bundle"))
	}
	if p.Verify != nil && (p.Verify.KeyID == "" || p.Verify.PublicKey == "" || p.Verify.Algorithm == "") {
		errs = append(errs, errors.New("policy.verify needs key_id, algorithm and public_key"))
	}
	if p.Reload < 0 {
		errs = append(errs, errors.New("policy.reload must not be negative"))
	}
	return errors.Join(errs...)
}

// Open loads the policy and returns a Reloader; run its Run method to pick
// up changes.
func (p PolicySource) Open(ctx context.Context, log *slog.Logger) (*policy.Reloader, error) {
	var opts []policy.Option
	switch {
	case p.Bundle != "":
		var v *policy.BundleVerification
		if p.Verify != nil {
			pem, err := os.ReadFile(p.Verify.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("policy: bundle key: %w", err)
			}
			v = &policy.BundleVerification{KeyID: p.Verify.KeyID, Algorithm: p.Verify.Algorithm, PublicKeyPEM: pem, Scope: p.Verify.Scope}
		}
		opts = append(opts, policy.WithBundle(p.Bundle, v))
	case len(p.Files) > 0:
		opts = append(opts, policy.WithFiles(p.Files...))
	}
	every := time.Duration(p.Reload)
	if every == 0 {
		every = 10 * time.Second
	}
	return policy.NewReloader(ctx, every, log, opts...)
}

// snapshot returns the policy engine in force now, so that one request
// is judged and labelled (by hash) with one and the same policy even if a
// reload happens meanwhile.
func snapshot(p Policy) Policy {
	if r, ok := p.(interface{ Current() *policy.Engine }); ok {
		return r.Current()
	}
	return p
}

// Snapshot is snapshot for the coordinator.
func Snapshot(p Policy) Policy { return snapshot(p) }
