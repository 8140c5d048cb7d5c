package signer

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/attest/sevguest"
	signv1 "github.com/frostmint/frostmint/proto/frostmint/sign/v1"
	"github.com/frostmint/frostmint/signer/ceremony"
)

// AttestationConfig says where the signer's SEV-SNP attestation comes
// from, and which attestation it asks of its peers in a key ceremony.
type AttestationConfig struct {
	// Provider is "auto" (the default: the guest device if this is an
	// SEV-SNP guest, else no attestation), "sev-guest" (the device must
	// be there: the signer does not start without it) or "none". The
	// signer's round-1 packages in key ceremonies carry its evidence too.
	Provider string `json:"provider,omitempty"`
	// Verifier, when set, checks the evidence in peers' round-1 packages
	// (roots, measurements, TCB: as the coordinator's
	// attestation.verifier); a peer whose evidence it refuses aborts the
	// ceremony, named. Without it, peers' evidence is not judged here.
	Verifier *attest.Config `json:"verifier,omitempty"`
	// PeersRequired aborts a key ceremony in which a peer's round-1
	// package carries no evidence the Verifier accepts. Needs Verifier.
	PeersRequired bool `json:"peers_required,omitempty"`
}

// Validate reports every problem at once.
func (a AttestationConfig) Validate() error {
	var errs []error
	switch a.Provider {
	case "", "auto", "sev-guest", "none":
	default:
		errs = append(errs, fmt.Errorf("attestation.provider must be auto, sev-guest or none, got %q", a.Provider))
	}
	if a.PeersRequired && a.Verifier == nil {
		errs = append(errs, errors.New("attestation.peers_required needs attestation.verifier (which reports to accept)"))
	}
	if a.Verifier != nil {
		if err := a.Verifier.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("attestation.verifier: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ceremonyAttestation is the key ceremony's attestation: this signer's
// provider (chosen by openAttestation) and the peers' verifier.
func (s *Server) ceremonyAttestation() (ceremony.Attestation, error) {
	a := ceremony.Attestation{Provider: s.attester, Required: s.cfg.Attestation.PeersRequired}
	if c := s.cfg.Attestation.Verifier; c != nil {
		v, err := attest.NewVerifier(*c, attest.WithClock(s.now))
		if err != nil {
			return a, fmt.Errorf("signer %d: attestation.verifier: %w", s.cfg.ID, err)
		}
		a.Verifier = v
	}
	return a, nil
}

// WithAttestationProvider replaces the attestation provider of the config
// (tests, with a fake; or an embedding application with its own device
// access). nil means none.
func WithAttestationProvider(p attest.Provider) Option {
	return func(s *Server) { s.attester, s.attesterSet = p, true }
}

// openAttestation picks the provider the config asks for.
func (s *Server) openAttestation() error {
	if s.attesterSet {
		return nil
	}
	switch s.cfg.Attestation.Provider {
	case "none":
		return nil
	case "sev-guest":
		p, err := sevguest.Open()
		if err != nil {
			return fmt.Errorf("signer %d: attestation: %w", s.cfg.ID, err)
		}
		s.attester = p
	default: // auto
		p, err := sevguest.Open()
		if errors.Is(err, attest.ErrUnavailable) {
			s.log.Info("no SEV-SNP guest device: this signer has no attestation")
			return nil
		}
		if err != nil {
			return fmt.Errorf("signer %d: attestation: %w", s.cfg.ID, err)
		}
		s.attester = p
	}
	s.log.Info("SEV-SNP attestation available")
	return nil
}

// NoAttestationMessage is the fixed message of Attest's
// FAILED_PRECONDITION when a signer has no attestation.
const NoAttestationMessage = "this signer has no attestation (not in an SEV-SNP guest, or attestation is off)"

// evidenceCache keeps the last report: a new one is needed only when the
// binding (TLS key, policy hash) changes, and the device is slow.
type evidenceCache struct {
	mu sync.Mutex
	rd [64]byte
	ev *attest.Evidence
}

// Attest implements signv1.SignerServiceServer: a report bound to the key
// of the TLS certificate in the cert file now (the one new handshakes
// present), this signer's id and its policy hash now.
func (s *Server) Attest(ctx context.Context, _ *signv1.AttestRequest) (*signv1.AttestResponse, error) {
	if s.attester == nil {
		return nil, status.Error(codes.FailedPrecondition, NoAttestationMessage)
	}
	spki, err := certSPKI(s.cfg.TLS.Cert)
	if err != nil {
		s.log.Error("attest: reading the TLS certificate", "err", err)
		return nil, status.Error(codes.Internal, "cannot read this signer's TLS certificate")
	}
	hash := snapshot(s.policy).Hash()
	rd := attest.ReportDataSPKI(spki, s.cfg.ID, hash)
	s.attestCache.mu.Lock()
	defer s.attestCache.mu.Unlock()
	if s.attestCache.ev == nil || s.attestCache.rd != rd {
		ev, err := s.attester.Report(ctx, rd)
		if err != nil {
			s.log.Error("attest: the guest device failed", "err", err)
			if errors.Is(err, attest.ErrUnavailable) {
				return nil, status.Error(codes.FailedPrecondition, NoAttestationMessage)
			}
			return nil, status.Error(codes.Unavailable, "the SEV-SNP guest device failed")
		}
		s.attestCache.rd, s.attestCache.ev = rd, ev
		s.log.Info("new attestation report", "tls_key", attest.KeyID(spki), "policy_hash", hash)
	}
	return &signv1.AttestResponse{Evidence: s.attestCache.ev.Proto(), SignerId: uint32(s.cfg.ID), PolicyHash: hash}, nil
}

// certSPKI returns the SubjectPublicKeyInfo of the first certificate in a
// PEM file.
func certSPKI(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s holds no certificate", path)
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return c.RawSubjectPublicKeyInfo, nil
	}
}
