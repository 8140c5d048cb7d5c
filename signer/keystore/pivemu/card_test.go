package pivemu

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"testing"
)

// apdu builds a short command APDU.
func apdu(cla, ins, p1, p2 byte, data []byte) []byte {
	out := []byte{cla, ins, p1, p2}
	if len(data) > 0 {
		out = append(out, byte(len(data)))
		out = append(out, data...)
	} else {
		out = append(out, 0)
	}
	return out
}

// run sends a command and splits the response.
func run(t *testing.T, c *Card, ins, p1, p2 byte, data []byte) ([]byte, uint16) {
	t.Helper()
	r := c.Transmit(apdu(0, ins, p1, p2, data))
	if len(r) < 2 {
		t.Fatalf("response %x too short", r)
	}
	return r[:len(r)-2], binary.BigEndian.Uint16(r[len(r)-2:])
}

func mustSW(t *testing.T, got, want uint16) {
	t.Helper()
	if got != want {
		t.Fatalf("status %04x, want %04x", got, want)
	}
}

func newSelected(t *testing.T, cfg Config) *Card {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, sw := run(t, c, insSelect, 0x04, 0, aidPIV[:5])
	mustSW(t, sw, swOK)
	return c
}

func pinBlock(p string) []byte {
	b, _ := padPIN([]byte(p))
	return b
}

// authenticate performs management-key mutual authentication as a host.
func authenticate(t *testing.T, c *Card, alg byte, key []byte) uint16 {
	t.Helper()
	block, err := mgmCipher(alg, key)
	if err != nil {
		t.Fatal(err)
	}
	bs := block.BlockSize()
	resp, sw := run(t, c, insAuthenticate, alg, 0x9b, []byte{0x7c, 0x02, 0x80, 0x00})
	if sw != swOK {
		return sw
	}
	if len(resp) != 4+bs || resp[0] != 0x7c || resp[2] != 0x80 {
		t.Fatalf("witness response %x", resp)
	}
	w := make([]byte, bs)
	block.Decrypt(w, resp[4:])
	ch := make([]byte, bs)
	rand.Read(ch)
	data := append(put(0x80, w), put(0x81, ch)...)
	resp, sw = run(t, c, insAuthenticate, alg, 0x9b, put(0x7c, data))
	if sw != swOK {
		return sw
	}
	want := make([]byte, bs)
	block.Encrypt(want, ch)
	if !bytes.Equal(resp, put(0x7c, put(0x82, want))) {
		t.Fatalf("card's answer to the challenge is wrong: %x", resp)
	}
	return sw
}

func TestATR(t *testing.T) {
	a := ATR()
	// TCK: the XOR of T0 to the last historical byte, which makes the XOR
	// of all bytes after TS zero.
	var x byte
	for _, b := range a[1:] {
		x ^= b
	}
	if a[0] != 0x3b || x != 0 {
		t.Fatalf("ATR %x: TS %02x, checksum %02x", a, a[0], x)
	}
	// TD1 announces T=1 (what piv-go asks pcscd for).
	if a[5]&0x0f != 1 {
		t.Fatalf("TD1 %02x does not announce T=1", a[5])
	}
}

func TestParseAPDU(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		data string
	}{
		{"00a4", false, ""},
		{"00fd0000", true, ""},
		{"00fd000000", true, ""},
		{"0020008008313233343536ffff", true, "313233343536ffff"},
		{"0020008008313233343536ffff00", true, "313233343536ffff"},
		{"0020008008313233", false, ""},
		{"00200080000008313233343536ffff", true, "313233343536ffff"},
		{"0020008000000831323334", false, ""},
	} {
		b, _ := hex.DecodeString(tc.in)
		c, ok := parseAPDU(b)
		if ok != tc.ok || hex.EncodeToString(c.data) != tc.data {
			t.Errorf("parseAPDU(%s) = %x, %v", tc.in, c.data, ok)
		}
	}
}

func TestTLV(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 255, 256, 1000} {
		v := bytes.Repeat([]byte{7}, n)
		for _, tag := range []uint32{0x53, 0x7f49} {
			ts, err := parseTLVs(append(put(tag, v), put(0x01, []byte{9})...))
			if err != nil || len(ts) != 2 || ts[0].tag != tag || !bytes.Equal(ts[0].val, v) || ts[1].val[0] != 9 {
				t.Fatalf("tag %x len %d: %v %v", tag, n, ts, err)
			}
		}
	}
	for _, bad := range []string{"53", "5302aa", "7f", "538101", "5383000001aa", "1f80"} {
		b, _ := hex.DecodeString(bad)
		if _, err := parseTLVs(b); err == nil {
			t.Errorf("parseTLVs(%s) accepted", bad)
		}
	}
}

func TestSelectAndIdentity(t *testing.T) {
	c, err := New(Config{Serial: 12345678, Version: [3]byte{5, 4, 3}})
	if err != nil {
		t.Fatal(err)
	}
	_, sw := run(t, c, insGetVersion, 0, 0, nil)
	mustSW(t, sw, swINSNotSupported) // not selected yet
	_, sw = run(t, c, insSelect, 0x04, 0, []byte{0xa0, 0x00, 0x00, 0x05, 0x27, 0x20, 0x01, 0x01})
	mustSW(t, sw, swFileNotFound)
	_, sw = run(t, c, insSelect, 0x04, 0, aidPIV)
	mustSW(t, sw, swOK)
	v, sw := run(t, c, insGetVersion, 0, 0, nil)
	mustSW(t, sw, swOK)
	if !bytes.Equal(v, []byte{5, 4, 3}) {
		t.Fatalf("version %x", v)
	}
	s, sw := run(t, c, insGetSerial, 0, 0, nil)
	mustSW(t, sw, swOK)
	if binary.BigEndian.Uint32(s) != 12345678 || c.Serial() != 12345678 {
		t.Fatalf("serial %x", s)
	}
	_, sw = run(t, c, 0x99, 0, 0, nil)
	mustSW(t, sw, swINSNotSupported)
	r := c.Transmit([]byte{0x80, insGetVersion, 0, 0, 0})
	if binary.BigEndian.Uint16(r[len(r)-2:]) != swCLANotSupported {
		t.Fatalf("CLA 80 accepted: %x", r)
	}
}

func TestVerifyPIN(t *testing.T) {
	c := newSelected(t, Config{PIN: "24680135"})
	_, sw := run(t, c, insVerify, 0, 0x80, nil)
	mustSW(t, sw, 0x63c3)
	_, sw = run(t, c, insVerify, 0, 0x80, pinBlock("11111111"))
	mustSW(t, sw, 0x63c2)
	_, sw = run(t, c, insVerify, 0, 0x80, pinBlock("24680135"))
	mustSW(t, sw, swOK)
	if c.PINRetries() != 3 {
		t.Fatal("a right PIN did not restore the tries")
	}
	_, sw = run(t, c, insVerify, 0, 0x80, nil)
	mustSW(t, sw, swOK)
	_, sw = run(t, c, insVerify, 0xff, 0x80, nil)
	mustSW(t, sw, swOK)
	_, sw = run(t, c, insVerify, 0, 0x80, nil)
	mustSW(t, sw, 0x63c3)
	for _, want := range []uint16{0x63c2, 0x63c1, swBlocked, swBlocked} {
		_, sw = run(t, c, insVerify, 0, 0x80, pinBlock("00000000"))
		mustSW(t, sw, want)
	}
	_, sw = run(t, c, insVerify, 0, 0x80, pinBlock("24680135"))
	mustSW(t, sw, swBlocked)
	if total, wrong := c.PINVerifications(); total != 7 || wrong != 6 {
		t.Fatalf("verifications %d/%d", total, wrong)
	}
	// PUK unblocks; RESET only works once PIN and PUK are both blocked.
	_, sw = run(t, c, insReset, 0, 0, nil)
	mustSW(t, sw, swConditions)
	_, sw = run(t, c, insResetRetry, 0, 0x80, append(pinBlock("12345678"), pinBlock("13572468")...))
	mustSW(t, sw, swOK)
	_, sw = run(t, c, insVerify, 0, 0x80, pinBlock("13572468"))
	mustSW(t, sw, swOK)
	_, sw = run(t, c, insChangeRef, 0, 0x80, append(pinBlock("13572468"), pinBlock("97531864")...))
	mustSW(t, sw, swOK)
	_, sw = run(t, c, insChangeRef, 0, 0x80, append(pinBlock("97531864"), []byte{'1', '2', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}...))
	mustSW(t, sw, swWrongData) // too short
	_, sw = run(t, c, insVerify, 0, 0x80, pinBlock("97531864"))
	mustSW(t, sw, swOK)
}

func TestResetWipes(t *testing.T) {
	c := newSelected(t, Config{})
	mustSW(t, authenticate(t, c, AlgAES192, DefaultManagementKey()), swOK)
	_, sw := run(t, c, insGenerate, 0, 0x9d, []byte{0xac, 0x03, 0x80, 0x01, AlgECCP256})
	mustSW(t, sw, swOK)
	for range 3 {
		run(t, c, insVerify, 0, 0x80, pinBlock("00000000"))
		run(t, c, insChangeRef, 0, 0x81, append(pinBlock("00000000"), pinBlock("00000000")...))
	}
	_, sw = run(t, c, insReset, 0, 0, nil)
	mustSW(t, sw, swOK)
	if c.SlotPublicKey(0x9d) != nil || c.PINRetries() != 3 {
		t.Fatal("reset kept the key or the blocked PIN")
	}
	_, sw = run(t, c, insVerify, 0, 0x80, pinBlock(DefaultPIN))
	mustSW(t, sw, swOK)
	// The attestation certificate survives.
	_, sw = run(t, c, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xff, 0x01})
	if sw&0xff00 != 0x6100 {
		t.Fatalf("attestation certificate gone: %04x", sw)
	}
}

func TestManagementKey(t *testing.T) {
	for _, tc := range []struct {
		alg byte
		key []byte
	}{
		{Alg3DES, DefaultManagementKey()},
		{AlgAES128, bytes.Repeat([]byte{3}, 16)},
		{AlgAES192, DefaultManagementKey()},
		{AlgAES256, bytes.Repeat([]byte{5}, 32)},
	} {
		c := newSelected(t, Config{ManagementKey: tc.key, ManagementKeyAlgorithm: tc.alg})
		gen := []byte{0xac, 0x03, 0x80, 0x01, AlgECCP256}
		_, sw := run(t, c, insGenerate, 0, 0x9a, gen)
		mustSW(t, sw, swSecurityStatus)
		wrong := append([]byte(nil), tc.key...)
		wrong[0] ^= 0x80 // not a DES parity bit
		mustSW(t, authenticate(t, c, tc.alg, wrong), swSecurityStatus)
		_, sw = run(t, c, insGenerate, 0, 0x9a, gen)
		mustSW(t, sw, swSecurityStatus)
		// The response step without a witness request fails.
		_, sw = run(t, c, insAuthenticate, tc.alg, 0x9b, put(0x7c, append(put(0x80, make([]byte, 8)), put(0x81, make([]byte, 8))...)))
		mustSW(t, sw, swSecurityStatus)
		mustSW(t, authenticate(t, c, tc.alg, tc.key), swOK)
		_, sw = run(t, c, insGenerate, 0, 0x9a, gen)
		mustSW(t, sw, swOK)
		md, sw := run(t, c, insGetMetadata, 0, 0x9b, nil)
		mustSW(t, sw, swOK)
		if md[2] != tc.alg {
			t.Fatalf("metadata says algorithm %02x", md[2])
		}
		// A new management key takes effect.
		nk := bytes.Repeat([]byte{9}, 32)
		_, sw = run(t, c, insSetMgmKey, 0xff, 0xff, append([]byte{AlgAES256, 0x9b, 32}, nk...))
		mustSW(t, sw, swOK)
		_, sw = run(t, c, insSelect, 0x04, 0, aidPIV[:5]) // forgets the authentication
		mustSW(t, sw, swOK)
		mustSW(t, authenticate(t, c, AlgAES256, nk), swOK)
	}
}

func TestGenerateAndUse(t *testing.T) {
	c := newSelected(t, Config{PIN: "11223344"})
	mustSW(t, authenticate(t, c, AlgAES192, DefaultManagementKey()), swOK)
	for _, tc := range []struct {
		slot, alg, pp, tp byte
	}{
		{0x9a, AlgECCP256, PINPolicyNever, TouchPolicyNever},
		{0x9c, AlgECCP256, PINPolicyAlways, TouchPolicyAlways},
		{0x9d, AlgECCP256, PINPolicyOnce, TouchPolicyCached},
		{0x82, AlgX25519, PINPolicyOnce, TouchPolicyNever},
	} {
		resp, sw := run(t, c, insGenerate, 0, tc.slot, put(0xac, cat(put(0x80, []byte{tc.alg}), put(0xaa, []byte{tc.pp}), put(0xab, []byte{tc.tp}))))
		mustSW(t, sw, swOK)
		ts, err := parseTLVs(resp)
		if err != nil || ts[0].tag != 0x7f49 {
			t.Fatalf("generate response %x", resp)
		}
		md, sw := run(t, c, insGetMetadata, 0, tc.slot, nil)
		mustSW(t, sw, swOK)
		mts, _ := parseTLVs(md)
		if v, _ := find(mts, 0x02); !bytes.Equal(v, []byte{tc.pp, tc.tp}) {
			t.Fatalf("metadata policy %x", v)
		}
		if v, _ := find(mts, 0x04); !bytes.Equal(v, ts[0].val) {
			t.Fatal("metadata public key differs from the generated one")
		}
	}
	_, sw := run(t, c, insGetMetadata, 0, 0x9e, nil)
	mustSW(t, sw, swRefNotFound)
	for _, bad := range [][]byte{
		put(0xac, put(0x80, []byte{0x07})),                                     // RSA
		put(0xac, cat(put(0x80, []byte{AlgECCP256}), put(0xaa, []byte{0x04}))), // biometric policy
		put(0xac, cat(put(0x80, []byte{AlgECCP256}), put(0xab, []byte{0x04}))), // unknown touch
		put(0xab, put(0x80, []byte{AlgECCP256})),                               // wrong template
	} {
		_, sw := run(t, c, insGenerate, 0, 0x9e, bad)
		mustSW(t, sw, swWrongData)
	}
	_, sw = run(t, c, insGenerate, 0, 0x9b, put(0xac, put(0x80, []byte{AlgECCP256})))
	mustSW(t, sw, swWrongP1P2)

	peer, _ := ecdh.P256().GenerateKey(rand.Reader)
	ecdhCmd := func(slot, alg byte, point []byte) ([]byte, uint16) {
		return run(t, c, insAuthenticate, alg, slot, put(0x7c, cat([]byte{0x82, 0x00}, put(0x85, point))))
	}
	wantShared := func(slot byte) []byte {
		pub := c.SlotPublicKey(slot).(*ecdsa.PublicKey)
		k, _ := pub.ECDH()
		s, _ := peer.ECDH(k)
		return put(0x7c, put(0x82, s))
	}
	// PIN never: no VERIFY needed.
	resp, sw := ecdhCmd(0x9a, AlgECCP256, peer.PublicKey().Bytes())
	mustSW(t, sw, swOK)
	if !bytes.Equal(resp, wantShared(0x9a)) {
		t.Fatal("ECDH result differs")
	}
	_, sw = ecdhCmd(0x9a, AlgX25519, peer.PublicKey().Bytes())
	mustSW(t, sw, swWrongData)
	_, sw = ecdhCmd(0x9a, AlgECCP256, make([]byte, 65))
	mustSW(t, sw, swWrongData)
	// PIN once: after one VERIFY, any number of operations.
	_, sw = ecdhCmd(0x9d, AlgECCP256, peer.PublicKey().Bytes())
	mustSW(t, sw, swSecurityStatus)
	_, sw = run(t, c, insVerify, 0, 0x80, pinBlock("11223344"))
	mustSW(t, sw, swOK)
	for range 2 {
		resp, sw = ecdhCmd(0x9d, AlgECCP256, peer.PublicKey().Bytes())
		mustSW(t, sw, swOK)
		if !bytes.Equal(resp, wantShared(0x9d)) {
			t.Fatal("ECDH result differs")
		}
	}
	// PIN always: VERIFY must come just before each operation.
	digest := sha256.Sum256([]byte("msg"))
	sign := func() ([]byte, uint16) {
		return run(t, c, insAuthenticate, AlgECCP256, 0x9c, put(0x7c, cat([]byte{0x82, 0x00}, put(0x81, digest[:]))))
	}
	_, sw = sign()
	mustSW(t, sw, swSecurityStatus)
	run(t, c, insVerify, 0, 0x80, pinBlock("11223344"))
	run(t, c, insGetSerial, 0, 0, nil)
	_, sw = sign()
	mustSW(t, sw, swSecurityStatus)
	run(t, c, insVerify, 0, 0x80, pinBlock("11223344"))
	resp, sw = sign()
	mustSW(t, sw, swOK)
	ts, _ := parseTLVs(resp)
	inner, _ := parseTLVs(ts[0].val)
	if !ecdsa.VerifyASN1(c.SlotPublicKey(0x9c).(*ecdsa.PublicKey), digest[:], inner[0].val) {
		t.Fatal("signature does not verify")
	}
	_, sw = sign()
	mustSW(t, sw, swSecurityStatus)
	// X25519.
	xpeer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	resp, sw = ecdhCmd(0x82, AlgX25519, xpeer.PublicKey().Bytes())
	mustSW(t, sw, swOK)
	s, _ := xpeer.ECDH(c.SlotPublicKey(0x82).(*ecdh.PublicKey))
	if !bytes.Equal(resp, put(0x7c, put(0x82, s))) {
		t.Fatal("X25519 result differs")
	}
	if c.Operations() != 5 {
		t.Fatalf("%d operations counted", c.Operations())
	}
	// Selecting again forgets the PIN.
	run(t, c, insSelect, 0x04, 0, aidPIV[:5])
	_, sw = ecdhCmd(0x9d, AlgECCP256, peer.PublicKey().Bytes())
	mustSW(t, sw, swSecurityStatus)
}

func TestX25519NeedsFirmware57(t *testing.T) {
	c := newSelected(t, Config{Version: [3]byte{5, 4, 3}})
	mustSW(t, authenticate(t, c, AlgAES192, DefaultManagementKey()), swOK)
	_, sw := run(t, c, insGenerate, 0, 0x9d, put(0xac, put(0x80, []byte{AlgX25519})))
	mustSW(t, sw, swWrongData)
}

// TestDataObjectsChaining stores an object larger than one APDU with
// command chaining and reads it back with response chaining.
func TestDataObjectsChaining(t *testing.T) {
	c := newSelected(t, Config{})
	obj := make([]byte, 700)
	rand.Read(obj)
	data := cat([]byte{0x5c, 0x03, 0x5f, 0xc1, 0x0b}, put(0x53, obj))
	send := func(d []byte) uint16 {
		for len(d) > 255 {
			r := c.Transmit(apdu(0x10, insPutData, 0x3f, 0xff, d[:255]))
			if sw := binary.BigEndian.Uint16(r); sw != swOK {
				return sw
			}
			d = d[255:]
		}
		r := c.Transmit(apdu(0, insPutData, 0x3f, 0xff, d))
		return binary.BigEndian.Uint16(r[len(r)-2:])
	}
	mustSW(t, send(data), swSecurityStatus)
	mustSW(t, authenticate(t, c, AlgAES192, DefaultManagementKey()), swOK)
	mustSW(t, send(data), swOK)
	var got []byte
	r := c.Transmit(apdu(0, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x0b}))
	for {
		sw := binary.BigEndian.Uint16(r[len(r)-2:])
		got = append(got, r[:len(r)-2]...)
		if sw == swOK {
			break
		}
		if sw&0xff00 != 0x6100 {
			t.Fatalf("status %04x", sw)
		}
		r = c.Transmit([]byte{0, insGetResponse, 0, 0, 0})
	}
	if !bytes.Equal(got, put(0x53, obj)) {
		t.Fatal("object read back differs")
	}
	// A chain interrupted by another command is refused.
	c.Transmit(apdu(0x10, insPutData, 0x3f, 0xff, data[:100]))
	_, sw := run(t, c, insGetSerial, 0, 0, nil)
	mustSW(t, sw, swLastOfChain)
	_, sw = run(t, c, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x0a})
	mustSW(t, sw, swFileNotFound)
	// Printed information needs the PIN.
	c.Transmit(apdu(0, insPutData, 0x3f, 0xff, cat([]byte{0x5c, 0x03, 0x5f, 0xc1, 0x09}, put(0x53, []byte{0x88, 0x00}))))
	_, sw = run(t, c, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x09})
	mustSW(t, sw, swSecurityStatus)
	run(t, c, insVerify, 0, 0x80, pinBlock(DefaultPIN))
	_, sw = run(t, c, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x09})
	mustSW(t, sw, swOK)
}

// readAll reads a possibly chained response.
func readAll(t *testing.T, c *Card, cmd []byte) ([]byte, uint16) {
	r := c.Transmit(cmd)
	var out []byte
	for {
		sw := binary.BigEndian.Uint16(r[len(r)-2:])
		out = append(out, r[:len(r)-2]...)
		if sw&0xff00 != 0x6100 {
			return out, sw
		}
		r = c.Transmit([]byte{0, insGetResponse, 0, 0, 0})
	}
}

func TestAttest(t *testing.T) {
	c := newSelected(t, Config{Serial: 7654321, FormFactor: 3})
	_, sw := run(t, c, insAttest, 0x9d, 0, nil)
	mustSW(t, sw, swWrongData) // empty slot
	mustSW(t, authenticate(t, c, AlgAES192, DefaultManagementKey()), swOK)
	run(t, c, insGenerate, 0, 0x9d, put(0xac, cat(put(0x80, []byte{AlgECCP256}), put(0xaa, []byte{PINPolicyAlways}), put(0xab, []byte{TouchPolicyCached}))))
	der, sw := readAll(t, c, apdu(0, insAttest, 0x9d, 0, nil))
	mustSW(t, sw, swOK)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "YubiKey PIV Attestation 9d" {
		t.Fatalf("subject %q", cert.Subject.CommonName)
	}
	exts := map[string][]byte{}
	for _, e := range cert.Extensions {
		exts[e.Id.String()] = e.Value
	}
	if !bytes.Equal(exts[oidPolicy.String()], []byte{PINPolicyAlways, TouchPolicyCached}) ||
		!bytes.Equal(exts[oidFirmware.String()], []byte{5, 7, 1}) ||
		!bytes.Equal(exts[oidFormFactor.String()], []byte{3}) ||
		!bytes.Equal(exts[oidSerial.String()], []byte{0x02, 0x03, 0x74, 0xcb, 0xb1}) {
		t.Fatalf("extensions %x", exts)
	}
	// The chain: slot attestation ← F9 certificate (object 5FFF01) ← root.
	obj, sw := readAll(t, c, apdu(0, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xff, 0x01}))
	mustSW(t, sw, swOK)
	ts, _ := parseTLVs(obj)
	inner, _ := parseTLVs(ts[0].val)
	f9, err := x509.ParseCertificate(inner[0].val)
	if err != nil || !f9.Equal(c.AttestationCertificate()) {
		t.Fatalf("F9 object: %v", err)
	}
	inter := x509.NewCertPool()
	inter.AddCert(f9)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: c.Roots(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatal(err)
	}
	other, _ := New(Config{})
	if _, err := cert.Verify(x509.VerifyOptions{Roots: other.Roots(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Fatal("verified under another card's root")
	}
	pub, _ := x509.MarshalPKIXPublicKey(c.SlotPublicKey(0x9d))
	got, _ := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if !bytes.Equal(pub, got) {
		t.Fatal("attested key is not the slot's")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{PIN: "123"},
		{PIN: "123456789"},
		{PUK: "1"},
		{PINRetries: 16},
		{ManagementKey: []byte{1, 2, 3}},
		{ManagementKeyAlgorithm: 0x42},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestServeVPCDProtocol plays vpcd over a pipe: framing, the ATR request,
// power controls (answered with nothing) and APDUs.
func TestServeVPCDProtocol(t *testing.T) {
	c, err := New(Config{Serial: 424242})
	if err != nil {
		t.Fatal(err)
	}
	vpcd, card := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- c.serveConn(card) }()
	send := func(msg []byte) {
		t.Helper()
		if _, err := vpcd.Write(binary.BigEndian.AppendUint16(nil, uint16(len(msg)))); err != nil {
			t.Fatal(err)
		}
		if _, err := vpcd.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() []byte {
		t.Helper()
		var hdr [2]byte
		if _, err := io.ReadFull(vpcd, hdr[:]); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(vpcd, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	send([]byte{vpcdATR})
	if !bytes.Equal(recv(), ATR()) {
		t.Fatal("ATR")
	}
	send([]byte{vpcdPowerOn})
	send([]byte{vpcdReset})
	if !c.isPowered() {
		t.Fatal("power on not recorded")
	}
	send(apdu(0, insSelect, 0x04, 0, aidPIV[:5]))
	if r := recv(); binary.BigEndian.Uint16(r[len(r)-2:]) != swOK {
		t.Fatalf("select: %x", r)
	}
	send(apdu(0, insGetSerial, 0, 0, nil))
	if r := recv(); !bytes.Equal(r, []byte{0, 0x06, 0x79, 0x32, 0x90, 0x00}) {
		t.Fatalf("serial: %x", r)
	}
	send([]byte{vpcdPowerOff})
	send(apdu(0, insGetSerial, 0, 0, nil))
	if r := recv(); binary.BigEndian.Uint16(r) != swINSNotSupported {
		t.Fatalf("power off kept the applet selected: %x", r)
	}
	vpcd.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// FuzzTransmit sends arbitrary APDUs: the card must always answer with a
// status word and never panic.
func FuzzTransmit(f *testing.F) {
	f.Add([]byte{0, insSelect, 4, 0, 5, 0xa0, 0, 0, 3, 8})
	f.Add(apdu(0, insGenerate, 0, 0x9d, []byte{0xac, 0x03, 0x80, 0x01, AlgECCP256}))
	f.Add(apdu(0, insAuthenticate, AlgECCP256, 0x9d, []byte{0x7c, 0x02, 0x82, 0x00}))
	f.Add(apdu(0x10, insPutData, 0x3f, 0xff, []byte{0x5c}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := New(Config{Serial: 1})
		if err != nil {
			t.Fatal(err)
		}
		c.Transmit(apdu(0, insSelect, 0x04, 0, aidPIV[:5]))
		authenticateQuiet(c)
		c.Transmit(apdu(0, insGenerate, 0, 0x9d, []byte{0xac, 0x03, 0x80, 0x01, AlgECCP256}))
		if r := c.Transmit(b); len(r) < 2 {
			t.Fatalf("no status word for %x", b)
		}
	})
}

// authenticateQuiet authenticates with the default key, ignoring errors.
func authenticateQuiet(c *Card) {
	block, _ := mgmCipher(AlgAES192, DefaultManagementKey())
	r := c.Transmit(apdu(0, insAuthenticate, AlgAES192, 0x9b, []byte{0x7c, 0x02, 0x80, 0x00}))
	if len(r) != 22 {
		return
	}
	w := make([]byte, 16)
	block.Decrypt(w, r[4:20])
	c.Transmit(apdu(0, insAuthenticate, AlgAES192, 0x9b, put(0x7c, cat(put(0x80, w), put(0x81, make([]byte, 16))))))
}
