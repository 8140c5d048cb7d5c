// Package ceremony is the coordinator's side of the networked key
// ceremony (see package signer/ceremony for the protocol and its threat
// model): a [Relay] that moves the DKG's messages between the signer
// daemons, and the operator-facing CeremonyService ([Service]) that runs
// it and streams its progress.
//
// The relay sees only public data and ciphertext, yet it is not a mere
// pipe: it verifies every round-1 package (certificate chain, roster
// identity, signature, proof of knowledge), every round-2 envelope's
// signature and binding, and every participant's result against the group
// it computes itself from the public commitments. That is what lets
// participants blame the relay for any public fault they detect, and the
// relay blame the sender of any public fault it detects (it arrived over
// that sender's authenticated channel): the culprit of an aborted ceremony
// is always named. A blame a participant returns is recorded as reported
// by that participant, whatever it claims; one that names a peer for a
// fault the relay itself checked (anything but the peer's attestation at
// exchange, or its ciphertext or share at finish) is false, and names the
// participant that made it. Each round is bounded by a timeout; on any failure
// every participant is told to abort and wipes its secrets.
//
// With [Config.Attestation], the relay also judges the SEV-SNP evidence in
// each round-1 package (sceremony.VerifyAttestation) before forwarding it,
// and with [Config.RequireAttestation] refuses a package without any: the
// ceremony aborts at round 1 naming the sender (FAULT_ATTESTATION), before
// its package reaches anyone. Participants that require attested peers
// check for themselves whatever the relay does.
//
// The relay reaches participants through the small [Participant]
// interface, independent of how the connection was made: over gRPC to
// each signer's mTLS port ([NewGRPCParticipant], [Dial]), or later over
// streams that signers dial out (guardians).
package ceremony
