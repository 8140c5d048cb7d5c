package evidence_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/evidence/usestoretest"
)

func TestMemoryUseStoreConformance(t *testing.T) {
	usestoretest.Run(t, func(t *testing.T, now func() time.Time) evidence.UseStore {
		return evidence.NewMemoryUseStore(1000, now)
	})
}

func TestMemoryUseStoreFull(t *testing.T) {
	clk := newClock(base)
	s := evidence.NewMemoryUseStore(3, clk.Now)
	ctx := t.Context()
	for i, until := range []time.Time{base.Add(time.Minute), base.Add(2 * time.Minute), base.Add(3 * time.Minute)} {
		if err := s.Use(ctx, fmt.Sprint("k", i), "b", until); err != nil {
			t.Fatal(err)
		}
	}
	// Full of live entries: a new key is refused, no live entry is evicted.
	err := s.Use(ctx, "k3", "b", base.Add(time.Hour))
	wantErr(t, err, evidence.ErrStoreFull)
	for i := range 3 {
		wantErr(t, s.Use(ctx, fmt.Sprint("k", i), "other", base.Add(time.Hour)), evidence.ErrReused)
		if err := s.Use(ctx, fmt.Sprint("k", i), "b", base.Add(time.Second)); err != nil {
			t.Fatalf("retry of a live entry in a full store: %v", err)
		}
	}
	// Once one expires, there is room again.
	clk.Set(base.Add(time.Minute))
	if err := s.Use(ctx, "k3", "b", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	wantErr(t, s.Use(ctx, "k4", "b", base.Add(time.Hour)), evidence.ErrStoreFull)
	// The expired key is free again.
	clk.Set(base.Add(2 * time.Minute))
	if err := s.Use(ctx, "k0", "other", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryUseStoreRefusals(t *testing.T) {
	clk := newClock(base)
	s := evidence.NewMemoryUseStore(0, clk.Now)
	ctx := t.Context()
	wantErr(t, s.Use(ctx, "", "b", base.Add(time.Minute)), evidence.ErrInvalid)
	wantErr(t, s.Use(ctx, "k", "", base.Add(time.Minute)), evidence.ErrInvalid)
	wantErr(t, s.Use(ctx, "k", "b", base), evidence.ErrExpired)
	wantErr(t, s.Use(ctx, "k", "b", base.Add(-time.Hour)), evidence.ErrExpired)
	if s.Len() != 0 {
		t.Fatalf("refused uses were recorded: Len = %d", s.Len())
	}
}

// TestMemoryUseStorePurge: expired entries leave the heap in expiry order,
// however they were inserted.
func TestMemoryUseStorePurge(t *testing.T) {
	clk := newClock(base)
	s := evidence.NewMemoryUseStore(100, clk.Now)
	ctx := t.Context()
	for i := range 100 {
		// Expiries in a scrambled order, 1..100 seconds.
		sec := (i*37)%100 + 1
		if err := s.Use(ctx, fmt.Sprint("k", sec), "b", base.Add(time.Duration(sec)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, s.Use(ctx, "new", "b", base.Add(time.Hour)), evidence.ErrStoreFull)
	for sec := 1; sec <= 100; sec++ {
		clk.Set(base.Add(time.Duration(sec) * time.Second))
		// Exactly the entries up to sec are free.
		if err := s.Use(ctx, fmt.Sprint("k", sec), "other", base.Add(time.Hour)); err != nil {
			t.Fatalf("at %ds: %v", sec, err)
		}
		if sec < 100 {
			wantErr(t, s.Use(ctx, fmt.Sprint("k", sec+1), "other", base.Add(time.Hour)), evidence.ErrReused)
		}
	}
}

// TestUseStoreWithVerify: the flow of a signer, end to end: verify, then use.
func TestUseStoreWithVerify(t *testing.T) {
	ca := newCA(t, "root")
	clk := newClock(base)
	v := certVerifier(t, ca, clk)
	der, key := ca.leaf(t, leafOpts{key: "ed25519"})
	req := testRequest(base)
	ev := evidence.Evidence{CertChain: [][]byte{der}, Signature: sign(t, req, key)}
	store := evidence.NewMemoryUseStore(10, clk.Now)
	mint := func(jti string) error {
		id, err := v.Verify(t.Context(), req, ev)
		if err != nil {
			return err
		}
		return store.Use(t.Context(), id.UseKey, jti, id.Expiry)
	}
	if err := mint("jti-1"); err != nil {
		t.Fatal(err)
	}
	if err := mint("jti-1"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	wantErr(t, mint("jti-2"), evidence.ErrReused)
	// When the store forgets the evidence, Verify refuses it.
	clk.Set(base.Add(evidence.DefaultMaxAge))
	wantErr(t, mint("jti-3"), evidence.ErrExpired)

	// Concurrent mints with one piece of evidence: exactly one wins.
	clk.Set(base)
	req2 := testRequest(base)
	req2.Nonce = append([]byte("another nonce..."), req2.Nonce[16:]...)
	ev2 := evidence.Evidence{CertChain: [][]byte{der}, Signature: sign(t, req2, key)}
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() {
			id, err := v.Verify(t.Context(), req2, ev2)
			if err == nil {
				err = store.Use(t.Context(), id.UseKey, fmt.Sprint("jti-", i), id.Expiry)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if !errors.Is(err, evidence.ErrReused) {
			t.Fatal(err)
		}
	}
	if won != 1 {
		t.Fatalf("%d mints won, want 1", won)
	}
}
