package softhsmtest

import (
	"errors"
	"net/url"
	"os"
	"runtime"
	"testing"
)

// fakeTB records whether the test would be skipped or failed; both stop
// the goroutine, as the real methods do.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(string, ...any) {
	f.skipped = true
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit()
}

func TestUnavailable(t *testing.T) {
	for _, required := range []bool{false, true} {
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			unavailable(f, required, errors.New("not installed"))
		}()
		<-done
		if f.failed != required || f.skipped == required {
			t.Errorf("required=%v: failed=%v skipped=%v", required, f.failed, f.skipped)
		}
	}
}

func TestToken(t *testing.T) {
	h := NewHSM(t)
	if got := os.Getenv("SOFTHSM2_CONF"); got != h.Conf {
		t.Fatalf("SOFTHSM2_CONF=%q, want %q", got, h.Conf)
	}
	a, b := h.NewToken(t), h.NewToken(t)
	if a.Label == b.Label || a.PIN == b.PIN || a.Serial == b.Serial || a.Serial == "" {
		t.Fatalf("tokens not distinct: %+v %+v", a, b)
	}
	st, err := os.Stat(a.PINFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("PIN file mode %v", st.Mode().Perm())
	}
	u, err := url.Parse(a.URI("a key;with/odd?chars"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "pkcs11" || u.Opaque == "" {
		t.Fatalf("URI %v", u)
	}
}

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, allowed, want string }{
		{"fm-01ab", pathChars, "fm-01ab"},
		{"a b;c/d", pathChars, "a%20b%3Bc%2Fd"},
		{"/usr/lib/x.so", queryChars, "/usr/lib/x.so"},
		{"file:/a&b=c", queryChars, "file:/a%26b%3Dc"},
	} {
		if got := escape(tc.in, tc.allowed); got != tc.want {
			t.Errorf("escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got, err := url.PathUnescape(escape(tc.in, tc.allowed)); err != nil || got != tc.in {
			t.Errorf("unescape(escape(%q)) = %q, %v", tc.in, got, err)
		}
	}
}
