package attest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/frostmint/frostmint/attest"
	"github.com/frostmint/frostmint/attest/attesttest"
)

// FuzzParseEvidence: any bytes either decode to Evidence of the right
// shape or fail with ErrEvidence / ErrNoAttestation, and decoded evidence
// never verifies for a binding it was not signed for.
func FuzzParseEvidence(f *testing.F) {
	fake := attesttest.New(f)
	var rd [64]byte
	rd[0] = 1
	ev, err := fake.Evidence(rd)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := ev.Marshal()
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x03, 1, 2, 3})
	f.Add(good[:len(good)/2])
	noTable, _ := (&attest.Evidence{Report: ev.Report}).Marshal()
	f.Add(noTable)
	v, err := attest.NewVerifier(fake.Config())
	if err != nil {
		f.Fatal(err)
	}
	var other [64]byte
	other[0] = 2
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := attest.ParseEvidence(b)
		if err != nil {
			if !errors.Is(err, attest.ErrEvidence) && !errors.Is(err, attest.ErrNoAttestation) {
				t.Fatalf("ParseEvidence: unexpected error class: %v", err)
			}
			return
		}
		if _, err := v.Verify(context.Background(), e, other); err == nil {
			t.Fatal("evidence verified for a binding it was not made for")
		}
	})
}
