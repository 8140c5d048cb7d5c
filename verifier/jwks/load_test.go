package jwks_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/frostmint/frostmint/verifier/jwks"
)

func rfcDoc(t testing.TB) []byte {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("testdata", "valid", "rfc8037.json"))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func checkRFCSet(t *testing.T, s *jwks.Static) {
	t.Helper()
	pub, err := s.Key(rfcThumbprint)
	if err != nil || !pub.Equal(rfcKey(t)) {
		t.Fatalf("Key = %x, %v", pub, err)
	}
}

func TestLoadFile(t *testing.T) {
	ctx := context.Background()
	s, err := jwks.Load(ctx, filepath.Join("testdata", "valid", "rfc8037.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkRFCSet(t, s)

	dir := t.TempDir()
	if _, err := jwks.Load(ctx, filepath.Join(dir, "missing.json"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, append(rfcDoc(t), bytes.Repeat([]byte(" "), jwks.MaxSize)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := jwks.Load(ctx, big, nil); !errors.Is(err, jwks.ErrInvalid) {
		t.Errorf("big file: %v, want ErrInvalid", err)
	}
	if _, err := jwks.Load(ctx, filepath.Join("testdata", "invalid", "private-key.json"), nil); !errors.Is(err, jwks.ErrInvalid) {
		t.Errorf("invalid file: %v, want ErrInvalid", err)
	}
}

func TestLoadHTTP(t *testing.T) {
	doc := rfcDoc(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "method", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(doc)
	})
	mux.HandleFunc("/created", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.Write(doc)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write(doc)
		w.Write(bytes.Repeat([]byte(" "), jwks.MaxSize))
	})
	mux.HandleFunc("/private", func(w http.ResponseWriter, r *http.Request) {
		b, _ := os.ReadFile(filepath.Join("testdata", "invalid", "private-key.json"))
		w.Write(b)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/jwks", http.StatusFound)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	// A TLS endpoint that redirects to the plain-http server.
	downgrade := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/jwks", http.StatusFound)
	}))
	defer downgrade.Close()

	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		src    string
		client *http.Client
		want   error // nil: success
	}{
		{"http loopback", srv.URL + "/jwks", nil, nil},
		{"http loopback redirect", srv.URL + "/redirect", nil, nil},
		{"https", tlsSrv.URL + "/jwks", tlsSrv.Client(), nil},
		{"https redirect", tlsSrv.URL + "/redirect", tlsSrv.Client(), nil},
		{"not found", srv.URL + "/nope", nil, jwks.ErrFetch},
		{"201", srv.URL + "/created", nil, jwks.ErrFetch},
		{"too big", srv.URL + "/big", nil, jwks.ErrInvalid},
		{"private key", srv.URL + "/private", nil, jwks.ErrInvalid},
		{"https to http redirect", downgrade.URL + "/", downgrade.Client(), jwks.ErrFetch},
		{"untrusted certificate", tlsSrv.URL + "/jwks", nil, nil /* checked below */},
		{"http remote", "http://jwks.example/jwks", nil, jwks.ErrFetch},
		{"file URL", "file:///etc/passwd", nil, jwks.ErrFetch},
		{"ftp URL", "ftp://127.0.0.1/jwks", nil, jwks.ErrFetch},
		{"no host", "https:///jwks", nil, jwks.ErrFetch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := jwks.Load(ctx, tc.src, tc.client)
			if tc.name == "untrusted certificate" {
				if err == nil {
					t.Fatal("Load trusted a self-signed certificate")
				}
				return
			}
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkRFCSet(t, s)
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Load = %v, want %v", err, tc.want)
			}
			if s != nil {
				t.Fatal("Load returned a set with an error")
			}
		})
	}

	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := jwks.Load(ctx, srv.URL+"/hang", nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Load = %v, want context.Canceled", err)
		}
	})
}

// roundTripper answers every request with a fixed function, so that tests
// can play hosts that do not exist.
type roundTripper func(*http.Request) *http.Response

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r), nil }

// TestLoadRedirectOffLoopback checks that a plain-http fetch to a loopback
// host cannot be redirected to a remote plain-http host.
func TestLoadRedirectOffLoopback(t *testing.T) {
	doc := rfcDoc(t)
	var accept string
	client := &http.Client{Transport: roundTripper(func(r *http.Request) *http.Response {
		resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: r, Body: io.NopCloser(bytes.NewReader(doc))}
		if r.URL.Host == "127.0.0.1" {
			accept = r.Header.Get("Accept")
			resp.StatusCode = http.StatusFound
			resp.Header.Set("Location", "http://evil.example/jwks")
			resp.Body = io.NopCloser(strings.NewReader(""))
		}
		return resp
	})}
	_, err := jwks.Load(context.Background(), "http://127.0.0.1/jwks", client)
	if !errors.Is(err, jwks.ErrFetch) {
		t.Fatalf("Load = %v, want ErrFetch", err)
	}
	if !strings.Contains(accept, "application/jwk-set+json") {
		t.Errorf("Accept = %q", accept)
	}
}
