package e2e

import (
	"crypto"
	"os"
	"testing"

	"github.com/frostmint/frostmint/signer/frost"
)

const cryptoSHA256 = crypto.SHA256

// encodeList builds a commitment list as the coordinator does.
func encodeList(groupFile string, encoded [][]byte) ([]byte, error) {
	g, err := frost.ReadGroupFile(groupFile)
	if err != nil {
		return nil, err
	}
	var cs []frost.Commitment
	for _, e := range encoded {
		c, err := g.DecodeCommitment(e)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return g.EncodeList(cs)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
