package ceremony_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	"github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/signer/ceremony/ceremonytest"
	"github.com/frostmint/frostmint/signer/frost"
	"github.com/frostmint/frostmint/verifier/mtls"
)

func keyOf(t *testing.T, f mtls.Files) (crypto.Signer, [][]byte) {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	return kp.PrivateKey.(crypto.Signer), kp.Certificate
}

// TestCheatingParticipant makes participant 2 cheat in each way the
// protocol must catch: the ceremony aborts naming participant 2, every
// participant drops the ceremony, and nothing is written.
func TestCheatingParticipant(t *testing.T) {
	tests := []struct {
		name     string
		cheat    func(t *testing.T, c *ceremonytest.Cluster, p *ceremony.Participant)
		fault    ceremonyv1.Fault
		reporter uint16 // who catches it: the relay (0) or a recipient
	}{
		{"round-1 signature forged", func(t *testing.T, c *ceremonytest.Cluster, p *ceremony.Participant) {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			ceremony.SetRound1Signer(p, k, ceremony.Chain(p))
		}, ceremonyv1.Fault_FAULT_BAD_SIGNATURE, ceremony.Relay},
		{"round-1 package signed by another signer's identity", func(t *testing.T, c *ceremonytest.Cluster, p *ceremony.Participant) {
			f, err := c.CA.Issue(c.Dir, "signer-9", ceremonytest.Leaf(ceremonytest.SignerID(9)))
			if err != nil {
				t.Fatal(err)
			}
			k, chain := keyOf(t, f)
			ceremony.SetRound1Signer(p, k, chain)
		}, ceremonyv1.Fault_FAULT_WRONG_IDENTITY, ceremony.Relay},
		{"round-1 package signed by the coordinator's identity", func(t *testing.T, c *ceremonytest.Cluster, p *ceremony.Participant) {
			k, chain := keyOf(t, c.Coordinator)
			ceremony.SetRound1Signer(p, k, chain)
		}, ceremonyv1.Fault_FAULT_WRONG_IDENTITY, ceremony.Relay},
		{"round-1 certificate from another CA", func(t *testing.T, c *ceremonytest.Cluster, p *ceremony.Participant) {
			ca, err := mtls.NewDevCA("rogue CA", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			f, err := ca.Issue(dir, "signer-2", ceremonytest.Leaf(ceremonytest.SignerID(2)))
			if err != nil {
				t.Fatal(err)
			}
			k, chain := keyOf(t, f)
			ceremony.SetRound1Signer(p, k, chain)
		}, ceremonyv1.Fault_FAULT_BAD_CERTIFICATE, ceremony.Relay},
		{"bad proof of knowledge", func(t *testing.T, c *ceremonytest.Cluster, p *ceremony.Participant) {
			ceremony.SetDKGRound1(p, func(msg []byte) []byte {
				other, err := frost.NewDKG(2, 2, 3)
				if err != nil {
					t.Error(err)
					return msg
				}
				o, _ := other.Round1()
				msg = bytes.Clone(msg)
				copy(msg[5:69], o[5:69]) // another polynomial's proof
				return msg
			})
		}, ceremonyv1.Fault_FAULT_BAD_PROOF, ceremony.Relay},
		{"corrupted round-2 share", func(t *testing.T, c *ceremonytest.Cluster, p *ceremony.Participant) {
			ceremony.SetShare(p, func(to uint16, msg []byte) []byte {
				if to == 3 {
					msg = bytes.Clone(msg)
					msg[5] ^= 1
				}
				return msg
			})
		}, ceremonyv1.Fault_FAULT_BAD_SHARE, 3},
		{"round-2 ciphertext that does not decrypt", func(t *testing.T, c *ceremonytest.Cluster, p *ceremony.Participant) {
			ceremony.SetCiphertext(p, func(to uint16, ct []byte) []byte {
				if to == 1 {
					ct = bytes.Clone(ct)
					ct[0] ^= 1
				}
				return ct
			})
		}, ceremonyv1.Fault_FAULT_BAD_CIPHERTEXT, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ceremonytest.Start(t, ceremonytest.Options{N: 3})
			tc.cheat(t, c, c.Members[2].Participant)
			_, err := c.Relay(t, 20*time.Second).Run(context.Background(), c.Participants(t), 2, nil)
			var ce *ceremony.CheatError
			if !errors.As(err, &ce) || ce.Culprit != 2 || ce.Reporter != tc.reporter || ce.Fault != tc.fault {
				t.Fatalf("got %v, want participant 2 blamed for %v by %d", err, tc.fault, tc.reporter)
			}
			for id, m := range c.Members {
				if es, err := os.ReadDir(m.KeysDir); err != nil || len(es) != 0 {
					t.Fatalf("participant %d wrote %v (%v)", id, es, err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for id, m := range c.Members {
				for m.Participant.InProgress() != 0 {
					if time.Now().After(deadline) {
						t.Fatalf("participant %d still holds the aborted ceremony", id)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
}

// ceremonyDir runs a 2-of-3 ceremony and returns participant 1's output
// directory and the cluster.
func ceremonyDir(t testing.TB) (string, *ceremonytest.Cluster) {
	t.Helper()
	c := ceremonytest.Start(t, ceremonytest.Options{N: 3})
	res, err := c.Relay(t, 20*time.Second).Run(context.Background(), c.Participants(t), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(c.Members[1].KeysDir, res.Kid), c
}

// edit rewrites a transcript through a generic JSON form.
func edit(t *testing.T, data []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func flipB64(s any) string {
	b := []byte(s.(string))
	if b[2] == 'A' {
		b[2] = 'B'
	} else {
		b[2] = 'A'
	}
	return string(b)
}

func TestVerifyTranscript(t *testing.T) {
	dir, c := ceremonyDir(t)
	data, err := os.ReadFile(filepath.Join(dir, ceremony.TranscriptFile))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ceremony.VerifyTranscript(data, c.Roots)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Threshold != 2 || tr.MaxSigners != 3 || len(tr.Signatures) != 3 || filepath.Base(dir) != tr.KeyID {
		t.Fatalf("transcript %+v", tr)
	}
	if _, err := ceremony.VerifyTranscript(data, nil); err != nil {
		t.Fatalf("without roots: %v", err)
	}
	other, err := mtls.NewDevCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	if _, err := other.Issue(otherDir, "x", ceremonytest.Leaf("spiffe://x/y")); err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(filepath.Join(otherDir, "ca.crt"))
	otherRoots := x509.NewCertPool()
	otherRoots.AppendCertsFromPEM(pem)

	tests := []struct {
		name  string
		data  []byte
		roots *x509.CertPool
	}{
		{"another CA", data, otherRoots},
		{"signature altered", edit(t, data, func(m map[string]any) {
			s := m["signatures"].([]any)[1].(map[string]any)
			s["signature"] = flipB64(s["signature"])
		}), c.Roots},
		{"signature missing", edit(t, data, func(m map[string]any) {
			m["signatures"] = m["signatures"].([]any)[:2]
		}), c.Roots},
		{"signatures swapped", edit(t, data, func(m map[string]any) {
			s := m["signatures"].([]any)
			a, b := s[0].(map[string]any), s[1].(map[string]any)
			a["signature"], b["signature"] = b["signature"], a["signature"]
		}), c.Roots},
		{"transcript hash altered", edit(t, data, func(m map[string]any) {
			h := []byte(m["transcript_sha256"].(string))
			h[0] ^= 1
			m["transcript_sha256"] = string(h)
		}), c.Roots},
		{"round-1 hash altered", edit(t, data, func(m map[string]any) {
			r := m["round1"].([]any)[0].(map[string]any)
			h := []byte(r["sha256"].(string))
			h[3] ^= 1
			r["sha256"] = string(h)
		}), c.Roots},
		{"round-1 body altered", edit(t, data, func(m map[string]any) {
			r := m["round1"].([]any)[2].(map[string]any)
			r["body"] = flipB64(r["body"])
		}), c.Roots},
		{"group key altered", edit(t, data, func(m map[string]any) { m["group_public_key"] = flipB64(m["group_public_key"]) }), c.Roots},
		{"public share altered", edit(t, data, func(m map[string]any) {
			s := m["public_key_shares"].(map[string]any)
			s["2"] = flipB64(s["2"])
		}), c.Roots},
		{"kid altered", edit(t, data, func(m map[string]any) { m["kid"] = "x" + m["kid"].(string)[1:] }), c.Roots},
		{"threshold altered", edit(t, data, func(m map[string]any) { m["threshold"] = 3 }), c.Roots},
		{"time altered", edit(t, data, func(m map[string]any) { m["time"] = "2020-01-01T00:00:00Z" }), c.Roots},
		{"roster altered", edit(t, data, func(m map[string]any) {
			m["roster"].([]any)[1].(map[string]any)["identity"] = ceremonytest.SignerID(7)
		}), c.Roots},
		{"ceremony id altered", edit(t, data, func(m map[string]any) { m["ceremony_id"] = "other" }), c.Roots},
		{"unknown field", edit(t, data, func(m map[string]any) { m["note"] = "hi" }), c.Roots},
		{"version", edit(t, data, func(m map[string]any) { m["version"] = 2 }), c.Roots},
		{"trailing data", append(bytes.Clone(data), []byte("{}")...), c.Roots},
		{"empty", nil, c.Roots},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ceremony.VerifyTranscript(tc.data, tc.roots); !errors.Is(err, ceremony.ErrTranscript) {
				t.Fatalf("got %v, want ErrTranscript", err)
			}
		})
	}
}

func TestVerifyDir(t *testing.T) {
	dir, c := ceremonyDir(t)
	if _, err := ceremony.VerifyDir(dir, c.Roots); err != nil {
		t.Fatal(err)
	}
	t.Run("renamed", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "not-the-kid")
		copyDir(t, dir, other)
		if _, err := ceremony.VerifyDir(other, c.Roots); !errors.Is(err, ceremony.ErrTranscript) {
			t.Fatalf("got %v", err)
		}
	})
	g, err := frost.ReadGroupFile(filepath.Join(dir, ceremony.GroupFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		group func() frost.PublicGroup
		loads bool // the group file is a valid group: VerifyDir's comparison must refuse it
	}{
		{"group file with shares swapped", func() frost.PublicGroup {
			pub := g.Public()
			pub.Shares = maps.Clone(pub.Shares)
			pub.Shares[1], pub.Shares[2] = pub.Shares[2], pub.Shares[1]
			return pub
		}, false},
		{"group file of another key", func() frost.PublicGroup { return otherGroup(t) }, true},
		{"group file of another threshold", func() frost.PublicGroup {
			pub := g.Public()
			pub.Threshold = 3
			return pub
		}, true},
		{"group file with another key's share", func() frost.PublicGroup {
			pub := g.Public()
			pub.Shares = maps.Clone(pub.Shares)
			pub.Shares[3] = otherGroup(t).Shares[3]
			return pub
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := filepath.Join(t.TempDir(), filepath.Base(dir))
			copyDir(t, dir, other)
			b, err := json.Marshal(tc.group())
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(other, ceremony.GroupFile)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := frost.ReadGroupFile(path); (err == nil) != tc.loads {
				t.Fatalf("ReadGroupFile: %v", err)
			}
			if _, err := ceremony.VerifyDir(other, c.Roots); !errors.Is(err, ceremony.ErrTranscript) {
				t.Fatalf("got %v, want ErrTranscript", err)
			}
		})
	}
}

// otherGroup is the public group of a fresh 2-of-3 key.
func otherGroup(t *testing.T) frost.PublicGroup {
	t.Helper()
	ds := make([]*frost.DKG, 3)
	r1 := make([][]byte, 3)
	for i := range ds {
		d, err := frost.NewDKG(uint16(i+1), 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		if r1[i], err = d.Round1(); err != nil {
			t.Fatal(err)
		}
		ds[i] = d
	}
	inbox := make([][]byte, 0, 2)
	for i, d := range ds {
		out, err := d.Round2(r1)
		if err != nil {
			t.Fatal(err)
		}
		if i != 0 {
			inbox = append(inbox, out[1])
		}
	}
	ks, err := ds[0].Finalize(inbox)
	if err != nil {
		t.Fatal(err)
	}
	return ks.Public
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ceremony.GroupFile, ceremony.ShareFile, ceremony.TranscriptFile} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
