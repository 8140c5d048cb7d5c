package binding

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

type vector struct {
	Method   string  `json:"method"`
	Host     string  `json:"host"`
	Scheme   string  `json:"scheme"`
	Target   string  `json:"target"`
	Body     string  `json:"body"`
	BindBody bool    `json:"bind_body"`
	Want     Binding `json:"want"`
}

func loadVectors(t *testing.T) []vector {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func request(v vector) *http.Request {
	r := httptest.NewRequest(v.Method, v.Target, strings.NewReader(v.Body))
	r.Host = v.Host
	if v.Scheme == "https" {
		r.TLS = &tls.ConnectionState{}
	}
	return r
}

func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		if err := v.Want.Validate(); err != nil {
			t.Errorf("%+v: want not canonical: %v", v.Want, err)
		}
		r := request(v)
		if err := Check(r, v.Want, 1<<20); err != nil {
			t.Errorf("%s %s%s: %v", v.Method, v.Host, v.Target, err)
		}
		// The body is still there for the handler.
		got, _ := io.ReadAll(r.Body)
		if string(got) != v.Body {
			t.Errorf("body not restored: %q", got)
		}
		path := strings.SplitN(v.Target, "?", 2)[0]
		b, err := New(v.Method, v.Host, v.Scheme, path, []byte(v.Body), v.BindBody)
		if err != nil || b != v.Want {
			t.Errorf("New = %+v, %v; want %+v", b, err, v.Want)
		}
	}
}

func TestMismatch(t *testing.T) {
	want := Binding{Method: "POST", Authority: "api.example.com", Path: "/pay", BodySHA256: BodyHash([]byte("a"))}
	for _, tc := range []struct {
		name, method, host, target, body string
		err                              error
	}{
		{"method", "PUT", "api.example.com", "/pay", "a", ErrMismatch},
		{"authority", "POST", "evil.example.com", "/pay", "a", ErrMismatch},
		{"port", "POST", "api.example.com:8443", "/pay", "a", ErrMismatch},
		{"path", "POST", "api.example.com", "/pay/", "a", ErrMismatch},
		{"encoded path", "POST", "api.example.com", "/p%61y", "a", ErrMismatch},
		{"body", "POST", "api.example.com", "/pay", "b", ErrMismatch},
		{"body too large", "POST", "api.example.com", "/pay", strings.Repeat("a", 100), ErrBodyTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			r.Host = tc.host
			r.TLS = &tls.ConnectionState{}
			if err := Check(r, want, 10); !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, b := range []Binding{
		{Method: "get", Authority: "a", Path: "/"},
		{Method: "GET", Authority: "A", Path: "/"},
		{Method: "GET", Authority: "a:443x", Path: "/"},
		{Method: "GET", Authority: "u@a", Path: "/"},
		{Method: "GET", Authority: "a", Path: "x"},
		{Method: "GET", Authority: "a", Path: "/?q"},
		{Method: "GET", Authority: "a", Path: "/", BodySHA256: "short"},
		{Method: "GET", Authority: "::1", Path: "/"},
		{Method: "GET", Authority: "a:0080", Path: "/"},
	} {
		if err := b.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v accepted (%v)", b, err)
		}
	}
}

func FuzzAuthority(f *testing.F) {
	for _, s := range []string{"a", "A:443", "[::1]:80", "[fe80::1%25en0]", "a:b:c", "@", ""} {
		f.Add(s, "https")
	}
	f.Fuzz(func(t *testing.T, a, scheme string) {
		c, err := Authority(a, scheme)
		if err != nil {
			return
		}
		// Canonical forms are fixed points.
		c2, err := Authority(c, scheme)
		if err != nil || c2 != c {
			t.Fatalf("Authority(%q) = %q, again %q, %v", a, c, c2, err)
		}
	})
}
