// Package attest verifies that a signer runs the code it should, on
// hardware that keeps its memory from its host: AMD SEV-SNP attestation
// reports, bound to the signer's TLS identity.
//
// # Why
//
// A threshold of signers protects a token key only if the signers are
// independent. Signer daemons usually run in virtual machines at one cloud
// provider, whose host (or anyone who owns it) can read a guest's memory
// and so every share it holds, unless the guest is an SEV-SNP
// confidential VM. An attestation report, signed by the AMD secure
// processor with a key certified by AMD (ARK → ASK → VCEK), says that the
// guest is one, which firmware and TCB it runs at, its guest policy (may
// the host debug it?) and its launch measurement: the hash of the initial
// image. The coordinator (and, in a key ceremony, the other signers) can
// then refuse a signer that is not in such a guest, runs an unknown image
// or a debuggable one.
//
// # Binding
//
// A report alone proves nothing about who sends it: any guest can replay
// another's report. Each report therefore carries, in its 64 bytes of
// REPORT_DATA, [ReportData] of the signer's TLS public key, its signer id
// and the hash of its policy bundle. The verifier recomputes it from the
// key it saw in the TLS handshake, the signer id it configured and its own
// policy hash: a report is accepted only for the connection of the guest
// that asked for it (only that guest holds the TLS private key, in its
// encrypted memory) and for the policy both sides run. SEV-SNP reports
// carry no time: the TLS key binding is what makes them fresh, and a key
// rotation calls for a new report.
//
// In a key ceremony, the report a signer puts in its signed round-1
// package binds, in place of the policy hash, a value naming the ceremony
// (signer/ceremony.AttestationBinding: "ceremony:" and the hex SHA-256 of
// the ceremony id, start time, t, n and roster), with the same TLS key and
// id (signer/ceremony.ReportData). Its colon keeps it apart from any
// policy hash, so a ceremony report is never accepted as an Attest report
// nor the other way round, and it is fresh for that ceremony only.
//
// # Threat model
//
// Trusted: AMD's roots (the built-in ones of go-sev-guest, or the
// configured ARK/ASK PEM files) and the secure processor; the measured
// image, which must itself keep the TLS private key in guest memory.
// Untrusted: the host and hypervisor (they deliver the certificate table
// and may lie in it: only the configured roots anchor the chain), the
// network, and the signer's own claims (the AttestResponse's fields are
// diagnostics, never used for the decision). Out of scope: side channels
// against SEV-SNP itself, a vulnerable TCB that has not been excluded by a
// minimum TCB, and a measured image that leaks its key.
//
// # Failing
//
// [Verifier.Verify] returns a [Result] only for evidence that passed every
// check; its errors wrap one sentinel per reason ([ErrNoAttestation],
// [ErrEvidence], [ErrChain], [ErrSignature], [ErrReportData], [ErrDebug],
// [ErrPolicy], [ErrMeasurement], [ErrTCB]) so that callers log and count
// a clear cause and tests use errors.Is; [ErrFetch] says the verifier
// itself could not fetch a certificate from AMD's KDS (the evidence is then
// neither accepted nor blamed). A [Provider] returns
// [ErrUnavailable] where there is no SEV-SNP guest device: attestation is
// then absent, never made up (the only fakes are go-sev-guest's test
// signer, in tests).
package attest
