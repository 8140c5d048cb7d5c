package evidence

import (
	"crypto/x509"
	"fmt"
	"testing"
	"time"
)

func TestChainCacheBounded(t *testing.T) {
	var c chainCache
	t0 := time.Unix(1_800_000_000, 0)
	leaf := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	for i := range chainCacheSize + 10 {
		c.put(chainKey([][]byte{[]byte(fmt.Sprint(i))}), leaf, "spiffe://td/x", [][]*x509.Certificate{{leaf}})
	}
	if n := len(c.m); n != chainCacheSize {
		t.Fatalf("%d chains remembered, want at most %d", n, chainCacheSize)
	}
}

func TestChainKeyUnambiguous(t *testing.T) {
	a := chainKey([][]byte{[]byte("ab"), []byte("c")})
	b := chainKey([][]byte{[]byte("a"), []byte("bc")})
	if a == b {
		t.Fatal("two chains of the same bytes, split differently, share a key")
	}
}

func TestChainWindows(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	root := &x509.Certificate{NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(2 * time.Hour)}
	leaf := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(3 * time.Hour)}
	var c chainCache
	k := chainKey([][]byte{[]byte("leaf")})
	c.put(k, leaf, "spiffe://td/x", [][]*x509.Certificate{{leaf, root}})
	tests := []struct {
		name    string
		now, ts time.Time
		hit     bool
	}{
		{"inside", t0.Add(time.Hour), t0.Add(time.Hour), true},
		{"at the latest NotBefore", t0, t0, true},
		{"at the earliest NotAfter", t0.Add(2 * time.Hour), t0.Add(2 * time.Hour), true},
		{"before the leaf", t0.Add(time.Minute), t0.Add(-time.Second), false},
		{"after the root", t0.Add(2*time.Hour + time.Second), t0.Add(time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.get(k, tt.now, tt.ts) != nil; got != tt.hit {
				t.Fatalf("hit = %v, want %v", got, tt.hit)
			}
		})
	}
}
