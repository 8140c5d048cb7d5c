// Package signer is the signer daemon: it holds one FROST key share, unsealed
// into memory only, and answers the coordinator's two rounds over mutually
// authenticated TLS 1.3.
//
// A signer trusts no one with its share. It accepts only clients whose
// certificate chains to the cluster CA and names an allowed coordinator;
// it generates every nonce itself, keeps nonces in memory only, lets each
// sign once and expires the unused ones; and before it signs it checks the
// message itself: it must be the signing input of a token of our profile
// (see package token), for our issuer and group key, issued now, living no
// longer than the hard cap. A coordinator that is taken over therefore
// cannot make this signer sign a long-lived token or anything that is not a
// token.
package signer
