package ceremony

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
)

// Relay is the participant id that stands for the relay (the coordinator)
// in a [CheatError]: as culprit, the relay forwarded something it must
// have refused; as reporter, the relay detected the fault itself.
const Relay uint16 = 0

// Errors of the package. Returned errors wrap one of them, or are a
// *[CheatError]; none carries secret material.
var (
	// ErrInvalid means a request is malformed or its parameters are out of
	// range (threshold, roster, ceremony id, clock).
	ErrInvalid = errors.New("ceremony: invalid request")
	// ErrUnknown means the participant holds no ceremony with that id: never
	// begun, aborted, or expired.
	ErrUnknown = errors.New("ceremony: unknown ceremony")
	// ErrState means a call came out of order (Exchange before Begin, Finish
	// twice, Abort after Commit, a ceremony id begun twice).
	ErrState = errors.New("ceremony: call out of order")
	// ErrBusy means the participant holds its maximum of ceremonies in
	// progress.
	ErrBusy = errors.New("ceremony: too many ceremonies in progress")
	// ErrExists means outputs for the key already exist: a participant never
	// overwrites a key directory.
	ErrExists = errors.New("ceremony: outputs for this key already exist")
	// ErrTranscript means a transcript does not verify.
	ErrTranscript = errors.New("ceremony: transcript does not verify")
)

// CheatError names the party whose message proved it misbehaved, and
// aborts the ceremony. Who is named follows one rule: the relay checks
// everything public (signatures, certificates, identities, proofs,
// consistency) before forwarding it, so a public fault that the relay
// detects is the sender's, and one that a participant detects is the
// relay's (it forwarded what it must have refused, or altered it). Only
// what needs a participant's secret — a round-2 ciphertext validly signed
// by its sender that does not decrypt, or a decrypted share inconsistent
// with the sender's commitments — is blamed on the sender by the
// participant that received it; and an attestation refusal
// (FAULT_ATTESTATION) is blamed on the sender whoever detects it, as the
// evidence is covered by the sender's signature.
type CheatError struct {
	// Culprit is the participant at fault, or [Relay].
	Culprit uint16
	// Reporter is the participant that detected the fault, or [Relay].
	Reporter uint16
	Fault    ceremonyv1.Fault
	// Reason says what was wrong; never secret.
	Reason string
	// Err, when set, is the error behind the fault, for errors.Is (an
	// attestation refusal wraps the attest sentinel of its reason). It
	// stays in the process that detected the fault: the wire carries
	// Reason only.
	Err error
}

func (e *CheatError) Error() string {
	return fmt.Sprintf("ceremony: %s is at fault (%s, detected by %s): %s",
		party(e.Culprit), FaultName(e.Fault), party(e.Reporter), e.Reason)
}

// Unwrap returns Err.
func (e *CheatError) Unwrap() error { return e.Err }

// Blame returns e as the Blame message of the wire protocol.
func (e *CheatError) Blame() *ceremonyv1.Blame {
	return &ceremonyv1.Blame{CulpritId: uint32(e.Culprit), ReporterId: uint32(e.Reporter), Fault: e.Fault, Reason: e.Reason}
}

// BlameError is the inverse of [CheatError.Blame].
func BlameError(b *ceremonyv1.Blame) *CheatError {
	return &CheatError{Culprit: uint16(b.GetCulpritId()), Reporter: uint16(b.GetReporterId()), Fault: b.GetFault(), Reason: b.GetReason()}
}

func party(id uint16) string {
	if id == Relay {
		return "the relay"
	}
	return fmt.Sprintf("participant %d", id)
}

// FaultName is the short name of a fault, "bad_signature" for
// FAULT_BAD_SIGNATURE.
func FaultName(f ceremonyv1.Fault) string {
	return strings.ToLower(strings.TrimPrefix(f.String(), "FAULT_"))
}

func cheat(culprit uint16, f ceremonyv1.Fault, format string, a ...any) *CheatError {
	return &CheatError{Culprit: culprit, Reporter: Relay, Fault: f, Reason: fmt.Sprintf(format, a...)}
}

// statusOf turns an error of a participant call into a gRPC status. The
// message is the error's text, which never carries secrets; unexpected
// errors become a bare INTERNAL (the caller logs them).
func statusOf(err error) error {
	if err == nil {
		return nil
	}
	var ce *CheatError
	switch {
	case errors.As(err, &ce):
		st := status.New(codes.Aborted, ce.Error())
		if d, derr := st.WithDetails(ce.Blame()); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrUnknown):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrState):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrBusy):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, "internal error (see the signer's log)")
}

// remoteError is a participant's status error seen by a client: it keeps
// the status (for status.FromError) and wraps the matching sentinel (for
// errors.Is).
type remoteError struct {
	st   *status.Status
	kind error
}

func (e *remoteError) Error() string              { return e.st.Message() }
func (e *remoteError) Unwrap() error              { return e.kind }
func (e *remoteError) GRPCStatus() *status.Status { return e.st }

// FromStatus turns the error of a call to a participant back into this
// package's errors: a status with a Blame detail becomes a *[CheatError],
// and the codes that [Participant] uses map back to [ErrInvalid],
// [ErrUnknown], [ErrState], [ErrBusy] and [ErrExists] (errors.Is works;
// status.FromError still sees the status). Other errors are returned
// unchanged.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if b, ok := d.(*ceremonyv1.Blame); ok {
			return BlameError(b)
		}
	}
	var kind error
	switch st.Code() {
	case codes.InvalidArgument:
		kind = ErrInvalid
	case codes.NotFound:
		kind = ErrUnknown
	case codes.FailedPrecondition:
		kind = ErrState
	case codes.ResourceExhausted:
		kind = ErrBusy
	case codes.AlreadyExists:
		kind = ErrExists
	default:
		return err
	}
	return &remoteError{st: st, kind: kind}
}
