package attest

import (
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"fmt"
)

// Domain is the domain separation label of REPORT_DATA, version 1.
const Domain = "frostmint attest v1"

// ReportData returns the 64-byte REPORT_DATA that binds a signer's report
// to its TLS public key, its signer id and its policy hash:
//
//	SHA-512( "frostmint attest v1" || 0x00
//	      || SHA-256(SPKI DER of tlsPublicKey)   (32 bytes)
//	      || signerID                            (2 bytes, big endian)
//	      || len(policyHash)                     (4 bytes, big endian)
//	      || policyHash                          (its bytes as given: the hex string of Engine.Hash) )
//
// Every field is fixed-size or length-prefixed, and the label names the
// version, so no two different inputs (or versions) give the same bytes.
// testdata/reportdata_v1.json holds a vector. It fails only when the key
// cannot be marshalled as a SubjectPublicKeyInfo.
func ReportData(tlsPublicKey crypto.PublicKey, signerID uint16, policyHash string) ([64]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(tlsPublicKey)
	if err != nil {
		return [64]byte{}, fmt.Errorf("attest: TLS public key: %w", err)
	}
	return ReportDataSPKI(spki, signerID, policyHash), nil
}

// ReportDataSPKI is ReportData from the DER SubjectPublicKeyInfo of the
// TLS key (x509.Certificate.RawSubjectPublicKeyInfo).
func ReportDataSPKI(spki []byte, signerID uint16, policyHash string) [64]byte {
	h := sha512.New()
	h.Write([]byte(Domain))
	h.Write([]byte{0})
	k := sha256.Sum256(spki)
	h.Write(k[:])
	var b [6]byte
	binary.BigEndian.PutUint16(b[:2], signerID)
	binary.BigEndian.PutUint32(b[2:], uint32(len(policyHash)))
	h.Write(b[:])
	h.Write([]byte(policyHash))
	var out [64]byte
	copy(out[:], h.Sum(nil))
	return out
}

// KeyID is the hex SHA-256 of a DER SubjectPublicKeyInfo: how results
// name the TLS key they are bound to.
func KeyID(spki []byte) string {
	k := sha256.Sum256(spki)
	return fmt.Sprintf("%x", k[:])
}
