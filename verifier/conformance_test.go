package verifier_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/conformance"
	"github.com/frostmint/frostmint/verifier/jwks"
)

//go:generate go test -run ^TestConformanceFile$ -update .

var update = flag.Bool("update", false, "rewrite testdata/conformance.json from package conformance")

const conformanceFile = "testdata/conformance.json"

// TestConformanceFile checks that the committed vectors are exactly what
// package conformance generates (or rewrites them with -update).
func TestConformanceFile(t *testing.T) {
	f, err := conformance.Generate()
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(conformanceFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conformanceFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(conformanceFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what package conformance generates; run go generate ./verifier", conformanceFile)
	}
	// Generation is deterministic.
	again, err := conformance.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := again.Marshal(); !bytes.Equal(b, want) {
		t.Fatal("two runs of conformance.Generate differ")
	}
}

// TestConformance runs the verifier over every vector of the committed
// file, read as another implementation would read it: from the JSON alone.
func TestConformance(t *testing.T) {
	data, err := os.ReadFile(conformanceFile)
	if err != nil {
		t.Fatal(err)
	}
	var f conformance.File
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if f.Version != conformance.Version {
		t.Fatalf("version %d, want %d", f.Version, conformance.Version)
	}
	var issuers []verifier.Issuer
	for _, iss := range f.Issuers {
		keys, err := jwks.Parse(iss.JWKS)
		if err != nil {
			t.Fatalf("issuer %s: %v", iss.Issuer, err)
		}
		issuers = append(issuers, verifier.Issuer{Issuer: iss.Issuer, Keys: keys})
	}
	clock := func() time.Time { return time.Unix(f.Now, 0) }

	rules := map[string]int{}
	for _, vec := range f.Vectors {
		rules[vec.Rule]++
		t.Run(vec.Name, func(t *testing.T) {
			v, err := verifier.New(verifier.Config{
				Issuers:  issuers,
				Audience: f.Audience,
				Leeway:   time.Duration(f.LeewaySeconds) * time.Second,
				MaxTTL:   time.Duration(f.MaxTTLSeconds) * time.Second,
				Now:      clock,
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, step := range vec.Steps {
				req := verifier.Requirements{Audience: step.Require.Audience, Scopes: step.Require.Scopes, RequireBinding: step.Require.RequireBinding}
				switch step.Require.Replay {
				case "single_use":
					req.Replay = verifier.SingleUse
				case "reusable":
					req.Replay = verifier.Reusable
				default:
					t.Fatalf("step %d: replay %q", i, step.Require.Replay)
				}
				if r := step.Request; r != nil {
					req.CheckBinding = func(want binding.Binding) error {
						hr, err := httpRequest(r)
						if err != nil {
							t.Fatalf("step %d: %v", i, err)
						}
						return binding.CheckScheme(hr, r.Scheme, want, r.MaxBodyBytes)
					}
				}
				claims, err := v.Check(context.Background(), step.Token, req)
				if !step.Expect.Accept {
					if got := verifier.CodeOf(err); got != verifier.Code(step.Expect.Code) {
						t.Fatalf("step %d: code %q (%v), want %q", i, got, err, step.Expect.Code)
					}
					if claims != nil {
						t.Fatalf("step %d: claims returned with a refusal", i)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: refused: %v", i, err)
				}
				b, err := json.Marshal(claims)
				if err != nil {
					t.Fatal(err)
				}
				var got map[string]any
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, step.Expect.Claims) {
					t.Fatalf("step %d: claims\n got %v\nwant %v", i, got, step.Expect.Claims)
				}
			}
		})
	}

	// Every code a token can cause has a vector; replay_store_unavailable
	// depends on the store, not the token.
	for _, code := range []verifier.Code{
		verifier.CodeMalformed, verifier.CodeBadHeader, verifier.CodeMissingClaim, verifier.CodeTTLExceedsCap,
		verifier.CodeUntrustedIssuer, verifier.CodeUnknownKey, verifier.CodeBadSignature, verifier.CodeExpired,
		verifier.CodeIssuedInFuture, verifier.CodeNotYetValid, verifier.CodeWrongAudience, verifier.CodeInsufficientScope,
		verifier.CodeBindingRequired, verifier.CodeBindingMismatch, verifier.CodeBodyTooLarge, verifier.CodeReplayed,
	} {
		if rules[string(code)] == 0 {
			t.Errorf("no conformance vector for %s", code)
		}
	}
	if rules["accept"] == 0 {
		t.Error("no accepted vector")
	}
}

// httpRequest builds the incoming request a step describes.
func httpRequest(r *conformance.Request) (*http.Request, error) {
	u, err := url.Parse(r.Scheme + "://" + r.Authority + r.Path)
	if err != nil {
		return nil, err
	}
	body, err := base64.StdEncoding.DecodeString(r.BodyBase64)
	if err != nil {
		return nil, err
	}
	return &http.Request{
		Method: r.Method, URL: u, Host: r.Authority, Header: http.Header{},
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
	}, nil
}
