package pivemu

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Yubico's attestation extensions
// (https://developers.yubico.com/PIV/Introduction/PIV_attestation.html).
var (
	oidFirmware   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 3}
	oidSerial     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 7}
	oidPolicy     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 8}
	oidFormFactor = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 9}
)

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newAuthority makes the card's attestation chain: a test root (standing
// in for Yubico's PIV root CA) certifies the slot-F9 attestation key,
// which certifies generated keys. The root's private key is dropped: no
// one can issue another certificate under it, as with the real root.
func (c *Card) newAuthority() error {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	sn, err := randomSerial()
	if err != nil {
		return err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("pivemu Test PIV Root CA %d", c.cfg.Serial)},
		NotBefore:             now,
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return err
	}
	if c.root, err = x509.ParseCertificate(rootDER); err != nil {
		return err
	}
	if c.attKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	if sn, err = randomSerial(); err != nil {
		return err
	}
	attTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "Yubico PIV Attestation (pivemu)"},
		NotBefore:             now,
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	attDER, err := x509.CreateCertificate(rand.Reader, attTmpl, c.root, &c.attKey.PublicKey, rootKey)
	if err != nil {
		return err
	}
	if c.attCert, err = x509.ParseCertificate(attDER); err != nil {
		return err
	}
	// The F9 certificate is an ordinary PIV data object, as on a YubiKey
	// (tag 70 certificate, 71 CertInfo, FE error detection code).
	c.objects[objAttestation] = cat(put(0x70, attDER), put(0x71, []byte{0}), put(0xfe, nil))
	return nil
}

// attest issues the attestation certificate of the key in slot: its
// subject names the slot, it carries the key's public key and Yubico's
// extensions, and the slot-F9 key signs it.
func (c *Card) attest(slot byte, k *slotKey) ([]byte, error) {
	pp, tp, serial := k.pinPolicy, k.touchPolicy, c.cfg.Serial
	if f := c.cfg.Faults; f.AttestPINPolicy != 0 {
		pp = f.AttestPINPolicy
	}
	if f := c.cfg.Faults; f.AttestTouchPolicy != 0 {
		tp = f.AttestTouchPolicy
	}
	if f := c.cfg.Faults; f.AttestSerial != 0 {
		serial = f.AttestSerial
	}
	serialDER, err := asn1.Marshal(int64(serial))
	if err != nil {
		return nil, err
	}
	sn, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: fmt.Sprintf("YubiKey PIV Attestation %02x", slot)},
		NotBefore:    c.attCert.NotBefore,
		NotAfter:     c.attCert.NotAfter,
		ExtraExtensions: []pkix.Extension{
			{Id: oidFirmware, Value: c.cfg.Version[:]},
			{Id: oidSerial, Value: serialDER},
			{Id: oidPolicy, Value: []byte{pp, tp}},
			{Id: oidFormFactor, Value: []byte{c.cfg.FormFactor}},
		},
	}
	var der []byte
	if k.x != nil {
		der, err = c.certifyX25519(tmpl, k.x.PublicKey())
	} else {
		der, err = x509.CreateCertificate(rand.Reader, tmpl, c.attCert, k.public(), c.attKey)
	}
	if err != nil {
		return nil, err
	}
	if c.cfg.Faults.CorruptAttestation {
		der[len(der)-4] ^= 0x01
	}
	return der, nil
}

// certifyX25519 issues tmpl for an X25519 key. crypto/x509 parses X25519
// subject keys but will not create a certificate for one, so the
// certificate is made for a throw-away P-256 key, then its
// SubjectPublicKeyInfo is replaced by the X25519 one and the
// to-be-signed part signed again.
func (c *Card) certifyX25519(tmpl *x509.Certificate, pub *ecdh.PublicKey) ([]byte, error) {
	placeholder, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.attCert, &placeholder.PublicKey, c.attKey)
	if err != nil {
		return nil, err
	}
	var cert struct {
		TBS    asn1.RawValue
		SigAlg asn1.RawValue
		Sig    asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &cert); err != nil || len(rest) != 0 {
		return nil, errors.New("pivemu: re-parsing the certificate")
	}
	// TBSCertificate: version [0], serial, signature, issuer, validity,
	// subject, subjectPublicKeyInfo, extensions [3].
	var fields [][]byte
	for rest := cert.TBS.Bytes; len(rest) > 0; {
		var f asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &f); err != nil {
			return nil, err
		}
		fields = append(fields, f.FullBytes)
	}
	if len(fields) < 7 {
		return nil, errors.New("pivemu: unexpected TBSCertificate")
	}
	if fields[6], err = x509.MarshalPKIXPublicKey(pub); err != nil {
		return nil, err
	}
	tbs, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: cat(fields...)})
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, c.attKey, digest[:])
	if err != nil {
		return nil, err
	}
	sigBits, err := asn1.Marshal(asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true,
		Bytes: cat(tbs, cert.SigAlg.FullBytes, sigBits)})
}
