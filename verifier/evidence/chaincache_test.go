package evidence_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/evidence"
)

// TestChainCacheKeepsEveryCheck proves one chain many times, as a workload
// minting again does: the remembered chain gives the same identity, and
// every check that depends on the request or on time still refuses.
func TestChainCacheKeepsEveryCheck(t *testing.T) {
	ca := newCA(t, "root")
	clk := newClock(base)
	v := certVerifier(t, ca, clk)
	der, key := ca.leaf(t, leafOpts{notBefore: base.Add(-time.Hour), notAfter: base.Add(time.Hour)})
	otherKey := testKey(t, "ecdsa2")
	chain := [][]byte{der}
	prove := func(ts time.Time, k any) (*evidence.Identity, error) {
		req := testRequest(ts)
		var sig []byte
		switch k := k.(type) {
		case []byte:
			sig = k
		default:
			sig = sign(t, req, key)
			if k == "other" {
				sig = sign(t, req, otherKey)
			}
		}
		return v.Verify(t.Context(), req, evidence.Evidence{CertChain: chain, Signature: sig})
	}

	first, err := prove(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := prove(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, again) {
		t.Fatalf("the remembered chain proves %+v, verification proved %+v", again, first)
	}

	tests := []struct {
		name string
		now  time.Time
		ts   time.Time
		sig  any
		want error
	}{
		{"signature by another key", base, base, "other", evidence.ErrUntrusted},
		{"garbage signature", base, base, []byte("not a signature"), evidence.ErrUntrusted},
		{"stale proof", base, base.Add(-10 * time.Minute), nil, evidence.ErrExpired},
		{"leaf expired since", base.Add(time.Hour + time.Second), base.Add(time.Hour + time.Second), nil, evidence.ErrExpired},
		{"proof made before the leaf was valid", base.Add(-time.Hour + time.Minute), base.Add(-time.Hour - 30*time.Second), nil, evidence.ErrExpired},
		{"proof made after the leaf expired", base.Add(time.Hour + 30*time.Second), base.Add(time.Hour + time.Minute), nil, evidence.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Set(tt.now)
			defer clk.Set(base)
			_, err := prove(tt.ts, tt.sig)
			wantErr(t, err, tt.want)
		})
	}
	// Still remembered, and still good, within the leaf's validity.
	clk.Set(base.Add(59 * time.Minute))
	if _, err := prove(base.Add(59*time.Minute), nil); err != nil {
		t.Fatal(err)
	}
}
