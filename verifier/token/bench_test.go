package token_test

import (
	"testing"

	"github.com/frostmint/frostmint/verifier/token"
)

// BenchmarkParseCompact is the cost of parsing a typical token (the
// verifier's steps 1 to 3).
func BenchmarkParseCompact(b *testing.B) {
	tok := validToken(b)
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := token.ParseCompact(tok); err != nil {
			b.Fatal(err)
		}
	}
}
