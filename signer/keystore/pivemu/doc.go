// Package pivemu is TEST INFRASTRUCTURE: a software smart card that
// emulates the YubiKey PIV applet well enough for github.com/go-piv/piv-go
// to drive it through its real code path (cgo → libpcsclite → pcscd →
// vsmartcard's vpcd reader driver → this card over TCP).
//
// It exists so the keystore's YubiKey backend is tested against the same
// APDUs a real YubiKey receives, in CI, without hardware. It is not a
// security device: keys live in process memory, the PIN is compared in
// software, and it must never hold a production secret. Only tests import
// it.
//
// # What is emulated
//
// A YubiKey 5 (firmware 5.7.1 by default) PIV applet:
//
//   - SELECT of the PIV AID; GET VERSION (INS FD), GET SERIAL (F8),
//     GET METADATA (F7) for the PIN, PUK, management key and key slots;
//   - VERIFY PIN (20) with a retry counter and lockout, CHANGE REFERENCE
//     (24) for the PIN and PUK, RESET RETRY COUNTER (2C), RESET (FB, only
//     once PIN and PUK are blocked), SET MANAGEMENT KEY (FF);
//   - management-key mutual authentication (GENERAL AUTHENTICATE 87 on key
//     9B) with a 3DES or AES-128/192/256 key; the default is AES-192 with
//     the well-known default value, as on firmware 5.7;
//   - GENERATE ASYMMETRIC KEY PAIR (47) for ECC P-256 and X25519 with the
//     YubiKey PIN-policy and touch-policy tags (AA, AB);
//   - GENERAL AUTHENTICATE for ECDH (tag 85, P-256 and X25519) and ECDSA
//     signatures (tag 81, P-256), enforcing the slot's PIN policy: "never",
//     "once" (PIN verified earlier in the session) and "always" (VERIFY
//     immediately before the operation);
//   - GET DATA / PUT DATA (CB / DB) for data objects such as certificates,
//     with the PIN-protected objects (printed information, biometrics)
//     readable only after VERIFY;
//   - ATTEST (F9): an X.509 attestation certificate for a generated key,
//     carrying the YubiKey extensions (firmware, serial, PIN/touch policy,
//     form factor) and signed by the card's slot-F9 attestation key, whose
//     own certificate (object 5FFF01) is issued by a per-card test root
//     ([Card.Root], [Card.Roots]);
//   - ISO 7816 command chaining (CLA 10) and response chaining (61xx + GET
//     RESPONSE) for objects larger than one short APDU.
//
// # What is not
//
// Touch cannot be emulated: keys may be generated with any touch policy,
// and it is reported in metadata and attestation, but the card never
// waits for a touch. Imported keys, RSA, P-384 and Ed25519 keys, secure
// messaging, biometrics and the other YubiKey applets are not emulated
// (the card answers 6D00 or 6A80 as a real card without the feature
// would).
//
// # Running it
//
// [Card.Transmit] answers one command APDU and needs nothing else; unit
// tests of the emulator use it directly. [Card.Serve] plugs the card into
// vpcd's TCP socket. [Start] (cgo builds) is the test helper that makes
// sure pcscd runs with the vpcd reader, inserts cards and waits until
// piv-go sees them; see its documentation for the lock that serialises
// test binaries sharing the one vpcd reader.
package pivemu
