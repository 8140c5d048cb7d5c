package evidence_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/evidence"
)

func TestCanonicalV2WithBinding(t *testing.T) {
	base := evidence.Request{Audience: "https://api.example.com", Scopes: []string{"pay"}, TTLSeconds: 60,
		Nonce: bytes.Repeat([]byte{1}, 16), Timestamp: time.Unix(1800000000, 0)}
	v1, err := evidence.Canonical(base)
	if err != nil {
		t.Fatal(err)
	}
	bound := base
	bound.Binding = &binding.Binding{Method: "POST", Authority: "api.example.com", Path: "/v1/pay", BodySHA256: binding.BodyHash([]byte("{}"))}
	v2, err := evidence.Canonical(bound)
	if err != nil {
		t.Fatal(err)
	}
	want := "frostmint mint request v2\naudience https://api.example.com\nscopes pay\nttl 60\nnonce AQEBAQEBAQEBAQEBAQEBAQ\ntimestamp 1800000000\nbinding POST api.example.com /v1/pay " + binding.BodyHash([]byte("{}")) + "\n"
	if string(v2) != want {
		t.Fatalf("v2 encoding\n%q\nwant\n%q", v2, want)
	}
	if bytes.Equal(v1[len(evidence.CanonicalPrefix):], v2[len(evidence.CanonicalPrefixV2):len(v1)]) == false {
		t.Fatal("v2 does not extend v1's fields")
	}
	noBody := bound
	noBody.Binding = &binding.Binding{Method: "GET", Authority: "api.example.com", Path: "/"}
	v2b, _ := evidence.Canonical(noBody)
	if !bytes.HasSuffix(v2b, []byte("binding GET api.example.com / -\n")) {
		t.Fatalf("unbound body: %q", v2b)
	}
	bad := base
	bad.Binding = &binding.Binding{Method: "post", Authority: "api.example.com", Path: "/"}
	if _, err := evidence.Canonical(bad); !errors.Is(err, evidence.ErrInvalid) {
		t.Fatalf("non-canonical binding: %v", err)
	}
}
