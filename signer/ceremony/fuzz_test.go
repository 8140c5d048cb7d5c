package ceremony_test

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/signer/ceremony/ceremonytest"
)

// genuine returns a real transcript, its parsed form and the CA roots.
func genuine(f *testing.F) ([]byte, *ceremony.Transcript, *ceremonytest.Cluster) {
	f.Helper()
	dir, c := ceremonyDir(f)
	data, err := os.ReadFile(filepath.Join(dir, ceremony.TranscriptFile))
	if err != nil {
		f.Fatal(err)
	}
	tr, err := ceremony.VerifyTranscript(data, c.Roots)
	if err != nil {
		f.Fatal(err)
	}
	return data, tr, c
}

// FuzzVerifyRound1 feeds arbitrary round-1 packages to the checks every
// participant and the relay run on network input: nothing may panic, and
// no body but the genuine one may be accepted as participant 1's (the
// signature binds it).
func FuzzVerifyRound1(f *testing.F) {
	_, tr, c := genuine(f)
	p := ceremony.Params{CeremonyID: tr.CeremonyID, Threshold: tr.Threshold, MaxSigners: tr.MaxSigners,
		StartedAt: tr.Time, Roster: ceremony.Roster{}}
	for _, r := range tr.Roster {
		p.Roster[r.ID] = r.Identity
	}
	g := tr.Round1[0]
	f.Add(g.Body, g.Signature, g.CertificateChain[0])
	f.Add(tr.Round1[1].Body, g.Signature, g.CertificateChain[0])
	f.Add(g.Body[:20], g.Signature[:10], g.CertificateChain[0][:100])
	f.Add([]byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, body, sig, cert []byte) {
		pkg := &ceremonyv1.Round1Package{Body: body, Signature: sig, CertificateChain: [][]byte{cert}}
		for _, roots := range []*x509.CertPool{c.Roots, nil} {
			r, err := ceremony.VerifyRound1(pkg, 1, p, roots, time.Time{})
			if err != nil {
				continue
			}
			if !bytes.Equal(body, g.Body) || r.ID != 1 {
				t.Fatalf("accepted a body that participant 1 never signed")
			}
		}
	})
}

// FuzzVerifyTranscript feeds arbitrary transcripts to the verifier:
// nothing may panic, and whatever is accepted records the genuine
// ceremony's key and transcript hash.
func FuzzVerifyTranscript(f *testing.F) {
	data, tr, c := genuine(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"ceremony_id":"x","time":"2020-01-01T00:00:00Z","threshold":2,"max_signers":2,"roster":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ceremony.VerifyTranscript(b, c.Roots)
		if err != nil {
			return
		}
		if got.SHA256 != tr.SHA256 || got.KeyID != tr.KeyID || !bytes.Equal(got.GroupPublicKey, tr.GroupPublicKey) {
			t.Fatalf("accepted a transcript of another ceremony: %+v", got)
		}
	})
}
