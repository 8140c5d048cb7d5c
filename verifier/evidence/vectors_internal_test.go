package evidence

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/signatures-v1.json")

// sigVector is one entry of testdata/signatures-v1.json: a key and its
// signature over testdata/canonical-v1.txt, for implementers of callers in
// other languages. ECDSA and RSA-PSS signatures are randomized, so only the
// Ed25519 one is reproducible; the others must verify.
type sigVector struct {
	Name      string `json:"name"`
	PKCS8     string `json:"private_key_pkcs8"` // base64 (std)
	Signature string `json:"signature"`         // base64 (std)
}

func vectorRequest(t *testing.T) (Request, []byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/canonical-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Audience   string   `json:"audience"`
		Scopes     []string `json:"scopes"`
		TTLSeconds int64    `json:"ttl_seconds"`
		Nonce      string   `json:"nonce"`
		Timestamp  int64    `json:"timestamp"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	nonce, err := base64.RawURLEncoding.DecodeString(v.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := os.ReadFile("testdata/canonical-v1.txt")
	if err != nil {
		t.Fatal(err)
	}
	return Request{Audience: v.Audience, Scopes: v.Scopes, TTLSeconds: v.TTLSeconds, Nonce: nonce,
		Timestamp: time.Unix(v.Timestamp, 0)}, msg
}

func TestSignatureVectors(t *testing.T) {
	req, msg := vectorRequest(t)
	if *update {
		writeSignatureVectors(t, req)
	}
	b, err := os.ReadFile("testdata/signatures-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []sigVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("%d vectors, want 3", len(vs))
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			der, _ := base64.StdEncoding.DecodeString(v.PKCS8)
			k, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatal(err)
			}
			key := k.(crypto.Signer)
			sig, _ := base64.StdEncoding.DecodeString(v.Signature)
			if err := verifySignature(key.Public(), msg, sig); err != nil {
				t.Fatalf("pinned signature: %v", err)
			}
			// And over any other request it does not verify.
			other := bytes.Replace(msg, []byte("ttl 300"), []byte("ttl 900"), 1)
			if err := verifySignature(key.Public(), other, sig); err == nil {
				t.Fatal("the signature verifies over another request")
			}
			fresh, err := SignRequest(req, key)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := key.(ed25519.PrivateKey); ok && !bytes.Equal(fresh, sig) {
				t.Fatalf("Ed25519 signature changed: %x, pinned %x", fresh, sig)
			}
		})
	}
}

func writeSignatureVectors(t *testing.T, req Request) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	var vs []sigVector
	for _, c := range []struct {
		name string
		key  crypto.Signer
	}{{"ed25519", ed}, {"ecdsa-p256-sha256-asn1", ec}, {"rsa-pss-2048-sha256-salt32", rk}} {
		der, err := x509.MarshalPKCS8PrivateKey(c.key)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := SignRequest(req, c.key)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, sigVector{c.name, base64.StdEncoding.EncodeToString(der), base64.StdEncoding.EncodeToString(sig)})
	}
	b, _ := json.MarshalIndent(vs, "", "  ")
	if err := os.WriteFile("testdata/signatures-v1.json", append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
