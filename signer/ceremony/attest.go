package ceremony

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/frostmint/frostmint/attest"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
)

// EvidenceVerifier checks SEV-SNP attestation evidence; *attest.Verifier
// is one.
type EvidenceVerifier interface {
	// Verify returns a Result only for evidence that passed every check
	// and whose REPORT_DATA is expected; otherwise an error wrapping one of
	// package attest's sentinels (attest.ErrMeasurement, …).
	Verify(ctx context.Context, ev *attest.Evidence, expected [64]byte) (attest.Result, error)
}

// Attestation configures SEV-SNP attestation in ceremonies (see
// [ParticipantConfig.Attestation]). The zero value attests nothing and
// checks nothing: the behaviour of a signer outside an SEV-SNP guest.
type Attestation struct {
	// Provider, when set, makes Begin put this participant's evidence in
	// its round-1 package, bound by [ReportData]. A Provider that fails
	// with an error wrapping attest.ErrUnavailable leaves it out; any other
	// failure fails Begin.
	Provider attest.Provider
	// Verifier, when set, checks the evidence of every peer's round-1
	// package that carries some ([VerifyAttestation]).
	Verifier EvidenceVerifier
	// Required makes evidence the Verifier accepts mandatory in every
	// peer's round-1 package. It needs a Verifier.
	Required bool
}

// Validate reports a Required without a Verifier.
func (a Attestation) Validate() error {
	if a.Required && a.Verifier == nil {
		return errors.New("ceremony: attestation required without a verifier")
	}
	return nil
}

// AttestationBinding is the value that stands for the policy hash in the
// REPORT_DATA of round-1 evidence (see [ReportData]): it binds the report
// to ceremony p, so that a report made for an earlier ceremony, or for
// SignerService.Attest, is refused. It is
//
//	"ceremony:" || hex( SHA-256( "frostmint ceremony attest v1" || 0x00
//	                          || len(ceremony id) (4 bytes, big endian) || ceremony id
//	                          || start time (Unix seconds, 8 bytes, big endian)
//	                          || t (2 bytes) || n (2 bytes, big endian)
//	                          || the roster hash (32 bytes, [Roster.Hash]) ) )
//
// a 73-character string. A policy hash is lowercase hex without a colon,
// so no ceremony binding is ever a policy hash: ceremony reports and the
// reports a signer serves to the coordinator cannot stand for each other.
func AttestationBinding(p Params) string {
	h := sha256.New()
	h.Write([]byte("frostmint ceremony attest v1\x00"))
	writeLP(h, []byte(p.CeremonyID))
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(p.StartedAt.Unix()))
	h.Write(ts[:])
	writeU16(h, p.Threshold)
	writeU16(h, p.MaxSigners)
	h.Write(p.Roster.Hash())
	return "ceremony:" + hex.EncodeToString(h.Sum(nil))
}

// ReportData is the REPORT_DATA of participant id's round-1 evidence in
// ceremony p: attest.ReportDataSPKI of spki (the DER SubjectPublicKeyInfo
// of the leaf certificate that signs the participant's round 1, which is
// its mTLS certificate), id and [AttestationBinding] of p.
func ReportData(spki []byte, id uint16, p Params) [64]byte {
	return attest.ReportDataSPKI(spki, id, AttestationBinding(p))
}

// VerifyAttestation checks the attestation evidence in r, a round-1
// package already verified by [VerifyRound1], with v: the report must
// verify and be bound by [ReportData] to the key of r's certificate, r's
// participant id and ceremony p. A package without evidence passes unless
// required. It returns the verified result, or nil when there was nothing
// to check (no evidence, or no verifier and not required).
//
// It fails with a *[CheatError] naming r.ID as culprit, fault
// FAULT_ATTESTATION and the relay as reporter (the caller sets itself as
// reporter); its Err wraps the attest sentinel of the refusal
// (attest.ErrNoAttestation for absent evidence). The evidence is covered
// by r's signature, so the sender is to blame whoever detects it. A
// required check without a verifier, a check this side could not finish
// (ctx done, attest.ErrFetch: AMD's KDS unreachable) fail with a plain
// error: no one is blamed.
func VerifyAttestation(ctx context.Context, r *Round1, p Params, v EvidenceVerifier, required bool) (*attest.Result, error) {
	refuse := func(err error, format string, a ...any) *CheatError {
		ce := cheat(r.ID, ceremonyv1.Fault_FAULT_ATTESTATION, format, a...)
		ce.Err = err
		return ce
	}
	if r.Attestation == nil {
		if required {
			return nil, refuse(attest.ErrNoAttestation, "round-1 package carries no attestation, and attested peers are required")
		}
		return nil, nil
	}
	if v == nil {
		if required {
			return nil, errors.New("ceremony: attestation required without a verifier")
		}
		return nil, nil
	}
	ev, err := attest.FromProto(r.Attestation)
	if err != nil {
		return nil, refuse(err, "round-1 attestation (%s): %v", attest.Reason(err), err)
	}
	res, err := v.Verify(ctx, ev, ReportData(r.Chain[0].RawSubjectPublicKeyInfo, r.ID, p))
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, attest.ErrFetch) {
			// Not the sender's fault: this side gave up (round timeout)
			// or could not reach AMD's KDS.
			return nil, fmt.Errorf("ceremony: checking participant %d's attestation: %w", r.ID, err)
		}
		return nil, refuse(err, "round-1 attestation refused (%s): %v", attest.Reason(err), err)
	}
	return &res, nil
}
