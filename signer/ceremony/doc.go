// Package ceremony is a signer's side of the networked key ceremony: a
// FROST distributed key generation (RFC 9591, Ed25519; the Pedersen DKG
// with proofs of knowledge of package signer/frost) run by the real signer
// daemons over the network, with the coordinator relaying every message.
// It replaces the development-only signer/devkeygen, whose message board is
// a directory on one workstation.
//
// # Why a relay, and what it is trusted with
//
// Signers accept calls only from the coordinator (mTLS, allow-listed
// identity) and never talk to each other, so the coordinator carries the
// ceremony's messages. It is trusted with nothing secret and with nothing
// it could alter unnoticed:
//
//   - Round 1 (Begin): each participant draws its polynomial and a fresh
//     X25519 "box" key for this ceremony only, and signs a package — its
//     DKG commitments with proof of knowledge, the box public key, the
//     ceremony id, t, n, the start time and the roster hash — with its TLS
//     private key (Ed25519 or ECDSA P-256), carrying its certificate chain.
//     A receiver checks the chain against its CA bundle and that the
//     certificate's SPIFFE ID is the roster's identity for that participant
//     id. The roster (participant id → SPIFFE ID) comes from the
//     coordinator, but each participant checks its own entry and signs the
//     hash of the roster it received, so participants with different
//     rosters never accept each other's packages.
//   - Round 2 (Exchange → Finish): each participant's secret share for a
//     peer is encrypted to that peer's box key (X25519 → HKDF-SHA-256 →
//     ChaCha20-Poly1305, with the ceremony id, sender, recipient and the
//     hash of the whole round-1 view bound into the key and the associated
//     data) and the envelope is signed by the sender. The relay only ever
//     sees ciphertext; a participant given a different round-1 view than
//     its peers (a split view) detects it at the first envelope.
//   - Finish: each participant checks every share against its sender's
//     commitments, derives its key share and signs the SHA-256 of the
//     transcript (ceremony id, time, t, n, roster, every round-1 package
//     hash, group key, every public key share; see [Transcript]).
//   - Commit: only when a participant holds a valid signature from every
//     participant over its own transcript hash does it write anything: in
//     <KeysDir>/<kid>/ (kid = RFC 7638 thumbprint of the group key),
//     group.json, share.sealed (sealed by the configured keystore, label
//     [ShareLabel]) and transcript.json, all at once (a temporary directory
//     renamed into place). An existing directory for the kid is refused.
//
// # Who is blamed
//
// Any bad signature, bad certificate, wrong identity, bad proof of
// knowledge, or share inconsistent with its sender's commitments aborts the
// ceremony with a *[CheatError] naming the culprit. The relay is required
// to check everything public before forwarding it (package
// coordinator/ceremony does), so a public fault it detects is the sender's
// (it came over the sender's authenticated channel), and a public fault a
// participant detects is the relay's. What needs a secret to check — a
// validly signed round-2 ciphertext that does not decrypt, or a share
// inconsistent with its sender's commitments — is blamed on the sender by
// its recipient. A participant that lies about its peers can abort a
// ceremony (so can one that just goes away); no one can make the honest
// participants accept a key that is not the DKG's.
//
// An attestation refusal (see below) is blamed on the sender too, whoever
// detects it: the evidence is inside the sender's signed round-1 body, so
// no one else can have stripped or altered it, and whether it satisfies a
// participant's verifier is that participant's own judgement, which the
// relay need not share (FAULT_ATTESTATION).
//
// # Attestation
//
// A signer in an AMD SEV-SNP guest (a Provider in
// [ParticipantConfig.Attestation]) puts its evidence in its round-1 body,
// where its signature covers it. The field is optional: a body without it
// is what earlier versions sent, and earlier versions ignore it. The
// report's REPORT_DATA is [ReportData]: attest.ReportDataSPKI of the key
// of the certificate that signs round 1 (the signer's mTLS key), the
// participant id and, in place of the policy hash that
// SignerService.Attest reports bind, [AttestationBinding] of the ceremony
// (its id, start time, t, n and roster hash, marked "ceremony:" so that it
// never passes for a policy hash). Binding the ceremony makes a report
// fresh, to within the start time's clock skew, and leaves out the policy,
// which a ceremony does not use: a report replayed from another
// participant, an earlier ceremony or SignerService.Attest does not
// verify. A participant with a Verifier checks every peer's evidence once
// all round-1 packages are authentic ([VerifyAttestation]); with Required,
// a peer without evidence aborts the ceremony too. The transcript keeps
// the bodies, and so the evidence. The relay makes the same checks when
// configured to (package coordinator/ceremony).
//
// # Secrets
//
// The secret share and the box private key live only in memory: they are
// wiped (as far as Go allows: our own buffers are zeroed, the DKG library's
// internal copies are dropped) when the ceremony is committed, aborted, or
// detected cheating, and never reach a log, an error or a plain file. The
// state of a ceremony expires after [ParticipantConfig.TTL] in real time
// whatever the coordinator does, so an abandoned ceremony never pins its
// secrets; [Participant.Close] wipes them all.
//
// [VerifyTranscript] and [VerifyDir] check a written transcript offline
// (for "frostmint ceremony verify").
package ceremony
