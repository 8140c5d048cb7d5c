package evidence_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/evidence"
)

// parseCanonical is the inverse of Canonical, written from its
// documentation: it parses the six lines strictly and refuses any other
// spelling. That it inverts Canonical on every accepted request proves that
// Canonical is injective.
func parseCanonical(b []byte) (evidence.Request, error) {
	var r evidence.Request
	s, ok := strings.CutPrefix(string(b), evidence.CanonicalPrefix)
	if !ok {
		return r, errors.New("no prefix")
	}
	lines := strings.Split(s, "\n")
	if len(lines) != 6 || lines[5] != "" {
		return r, errors.New("not five lines after the prefix")
	}
	field := func(i int, label string) (string, error) {
		v, ok := strings.CutPrefix(lines[i], label+" ")
		if !ok {
			return "", fmt.Errorf("line %d is not %s", i, label)
		}
		return v, nil
	}
	num := func(s string) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != s {
			return 0, fmt.Errorf("%q is not a canonical decimal", s)
		}
		return n, nil
	}
	var err error
	if r.Audience, err = field(0, "audience"); err != nil {
		return r, err
	}
	sc, err := field(1, "scopes")
	if err != nil {
		return r, err
	}
	r.Scopes = strings.Split(sc, " ")
	ttl, err := field(2, "ttl")
	if err != nil {
		return r, err
	}
	if r.TTLSeconds, err = num(ttl); err != nil {
		return r, err
	}
	n, err := field(3, "nonce")
	if err != nil {
		return r, err
	}
	if r.Nonce, err = base64.RawURLEncoding.Strict().DecodeString(n); err != nil || strings.ContainsAny(n, "\r\n") {
		return r, fmt.Errorf("nonce: %v", err)
	}
	ts, err := field(4, "timestamp")
	if err != nil {
		return r, err
	}
	sec, err := num(ts)
	if err != nil {
		return r, err
	}
	r.Timestamp = time.Unix(sec, 0)
	return r, nil
}

func sameRequest(a, b evidence.Request) bool {
	return a.Audience == b.Audience && slices.Equal(a.Scopes, b.Scopes) && a.TTLSeconds == b.TTLSeconds &&
		bytes.Equal(a.Nonce, b.Nonce) && a.Timestamp.Equal(b.Timestamp)
}

func fuzzRequest(aud, scopes string, ttl int64, nonce []byte, sec, nsec int64) evidence.Request {
	r := evidence.Request{Audience: aud, TTLSeconds: ttl, Nonce: nonce, Timestamp: time.Unix(sec, nsec%1e9)}
	if scopes != "" {
		r.Scopes = strings.Split(scopes, "\x00")
	}
	if sec == 0 && nsec == 0 {
		r.Timestamp = time.Time{}
	}
	return r
}

// FuzzCanonical: Canonical never panics; what it accepts parses back to the
// same request (so no two requests encode alike), and two accepted requests
// encode alike only if they are the same.
func FuzzCanonical(f *testing.F) {
	n16 := bytes.Repeat([]byte{7}, 16)
	n32 := bytes.Repeat([]byte{9}, 32)
	f.Add("https://api.example.com", "read\x00write", int64(300), n32, int64(1767323045), int64(0),
		"https://api.example.com", "read write", int64(300), n32, int64(1767323045), int64(0))
	f.Add("a", "b", int64(0), n16, int64(1), int64(0), "a", "b\x00", int64(0), n16, int64(1), int64(0))
	f.Add("a\nscopes x", "y", int64(1), n16, int64(2), int64(0), "a", "x\ny", int64(1), n16, int64(2), int64(0))
	f.Add("aud", "s1\x00s2", int64(5), n16, int64(100), int64(5e8), "aud", "s1", int64(5), n16, int64(100), int64(0))
	f.Add("é", "\u00a0", int64(-1), []byte{}, int64(-1), int64(0), "\xff", "s", int64(1<<62), n16, int64(253402300799), int64(0))
	f.Fuzz(func(t *testing.T, aud1, sc1 string, ttl1 int64, n1 []byte, sec1, ns1 int64,
		aud2, sc2 string, ttl2 int64, n2 []byte, sec2, ns2 int64) {
		r1 := fuzzRequest(aud1, sc1, ttl1, n1, sec1, ns1)
		r2 := fuzzRequest(aud2, sc2, ttl2, n2, sec2, ns2)
		b1, err1 := evidence.Canonical(r1)
		b2, err2 := evidence.Canonical(r2)
		for _, c := range []struct {
			r   evidence.Request
			b   []byte
			err error
		}{{r1, b1, err1}, {r2, b2, err2}} {
			if c.err != nil {
				if !errors.Is(c.err, evidence.ErrInvalid) || c.b != nil {
					t.Fatalf("Canonical(%+v) = %q, %v", c.r, c.b, c.err)
				}
				continue
			}
			back, err := parseCanonical(c.b)
			if err != nil {
				t.Fatalf("Canonical(%+v) = %q does not parse: %v", c.r, c.b, err)
			}
			if !sameRequest(back, c.r) {
				t.Fatalf("Canonical(%+v) = %q parses back to %+v", c.r, c.b, back)
			}
			again, _ := evidence.Canonical(c.r)
			if !bytes.Equal(again, c.b) {
				t.Fatal("Canonical is not deterministic")
			}
		}
		if err1 == nil && err2 == nil && bytes.Equal(b1, b2) != sameRequest(r1, r2) {
			t.Fatalf("requests %+v and %+v: encodings equal %v, requests equal %v", r1, r2, bytes.Equal(b1, b2), sameRequest(r1, r2))
		}
	})
}

// FuzzVerifyOIDC: no string verifies unless it is, byte for byte, a token
// the issuer made; refusals wrap one sentinel, never panic and never quote
// the token.
func FuzzVerifyOIDC(f *testing.F) {
	clk := newClock(base)
	gh := startIssuer(f, "RS256", clk)
	k8s := startIssuer(f, "ES256", clk)
	v := oidcVerifier(f, clk, gh.Config("github", oidcAudience), k8s.Config("k8s", oidcAudience))
	valid := map[string]bool{}
	t1, err := gh.GitHubToken(oidcAudience, "octo/app", "refs/heads/main", "ci", "", 5*time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	t2, err := k8s.KubernetesToken(oidcAudience, "prod", "api", 5*time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	t3 := signClaims(f, gh, map[string]any{"jti": nil})
	for _, tok := range []string{t1, t2, t3} {
		if _, err := v.Verify(f.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok}); err != nil {
			f.Fatal(err) // also fetches the keys, once
		}
		valid[tok] = true
		f.Add(tok)
		segs := strings.Split(tok, ".")
		f.Add(segs[0] + "." + segs[1] + ".")
		f.Add(segs[0] + "." + segs[1] + "." + segs[2] + "A")
		f.Add(segs[0] + "." + segs[1] + "." + segs[2][:len(segs[2])-1] + "B")
		f.Add(b64(`{"alg":"none"}`) + "." + segs[1] + ".")
		f.Add(b64(`{"alg":"HS256","kid":"x"}`) + "." + segs[1] + "." + segs[2])
	}
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")
	f.Add("{}")
	f.Add(strings.Repeat("A", 100) + "." + strings.Repeat("B", 100) + "." + strings.Repeat("C", 100))
	requests := gh.JWKSRequests() + k8s.JWKSRequests()
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := v.Verify(t.Context(), oidcRequest(), evidence.Evidence{OIDCToken: tok})
		if err == nil {
			if !valid[tok] {
				t.Fatalf("a token the issuers did not make verifies: %q -> %+v", tok, id)
			}
			return
		}
		if id != nil {
			t.Fatal("identity returned with an error")
		}
		n := 0
		for _, s := range sentinels {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%v wraps %d sentinels", err, n)
		}
		if len(tok) >= 16 && strings.Contains(err.Error(), tok) {
			t.Fatalf("the error quotes the token: %v", err)
		}
		if gh.JWKSRequests()+k8s.JWKSRequests() != requests {
			t.Fatal("a token made the verifier fetch keys within JWKSMinInterval")
		}
	})
}

// FuzzVerifyCertificate: arbitrary chains, signatures and requests never
// panic, and never verify unless they are the caller's own.
func FuzzVerifyCertificate(f *testing.F) {
	ca := newCA(f, "root")
	clk := newClock(base)
	v := certVerifier(f, ca, clk)
	der, key := ca.leaf(f, leafOpts{key: "ed25519"})
	req := testRequest(base)
	sig := sign(f, req, key)
	f.Add(der, []byte{}, sig, req.Nonce, base.Unix())
	f.Add(der, ca.der, sig, req.Nonce, base.Unix())
	f.Add(der, der, sig, req.Nonce, base.Unix()+1)
	f.Add(der[:len(der)-1], []byte{}, sig, req.Nonce, base.Unix())
	f.Add(ca.der, []byte{}, sig, req.Nonce, base.Unix())
	f.Add([]byte{0x30, 0x82}, []byte{0x30}, []byte{1}, []byte("0123456789abcdef"), int64(0))
	f.Fuzz(func(t *testing.T, leaf, extra, s, nonce []byte, ts int64) {
		chain := [][]byte{leaf}
		if len(extra) > 0 {
			chain = append(chain, extra)
		}
		r := testRequest(time.Unix(ts, 0))
		r.Nonce = nonce
		id, err := v.Verify(t.Context(), r, evidence.Evidence{CertChain: chain, Signature: s})
		if err == nil {
			if !bytes.Equal(leaf, der) || !bytes.Equal(s, sig) || !bytes.Equal(nonce, req.Nonce) || ts != base.Unix() {
				t.Fatalf("a proof the caller did not make verifies: %+v", id)
			}
			return
		}
		if id != nil {
			t.Fatal("identity returned with an error")
		}
	})
}
