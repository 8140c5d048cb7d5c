package ceremony

import "crypto"

// Test hooks that make a participant cheat. They exist only in this
// package's tests.

// SetRound1Signer makes p sign its round-1 package with key and present
// chain instead of its own identity.
func SetRound1Signer(p *Participant, key crypto.Signer, chain [][]byte) {
	p.faults.round1Key, p.faults.round1Chain = key, chain
}

// SetDKGRound1 lets f rewrite p's DKG round-1 message before it is signed.
func SetDKGRound1(p *Participant, f func([]byte) []byte) { p.faults.dkgRound1 = f }

// SetShare lets f rewrite p's DKG round-2 message for a recipient before
// it is encrypted and signed.
func SetShare(p *Participant, f func(to uint16, msg []byte) []byte) { p.faults.share = f }

// SetCiphertext lets f rewrite p's round-2 ciphertext for a recipient
// before the envelope is signed.
func SetCiphertext(p *Participant, f func(to uint16, ct []byte) []byte) { p.faults.ciphertext = f }

// Chain returns p's certificate chain.
func Chain(p *Participant) [][]byte { return p.me.chain }
