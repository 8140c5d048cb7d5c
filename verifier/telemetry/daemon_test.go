package telemetry_test

import (
	"errors"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/verifier/telemetry"
	"github.com/frostmint/frostmint/verifier/telemetry/telemetrytest"
)

func TestPolicyInfo(t *testing.T) {
	hash := ""
	reg := telemetry.NewRegistry()
	reg.MustRegister(telemetry.PolicyInfo(func() string { return hash }))
	srv := httptest.NewServer(telemetry.MetricsHandler(reg))
	defer srv.Close()
	if _, ok := telemetrytest.Scrape(t, srv.URL).Value("frostmint_policy_info"); ok {
		t.Fatal("policy_info before a policy is loaded")
	}
	for _, tc := range []struct{ hash, label string }{
		{"0123456789abcdef0123", "0123456789ab"},
		{"abc", "abc"},
		{"0123456789a\u00e9", "0123456789a"}, // never cut inside a rune
	} {
		hash = tc.hash
		m := telemetrytest.Scrape(t, srv.URL)
		if v, _ := m.Value("frostmint_policy_info", "hash", tc.label); v != 1 {
			t.Errorf("hash %q: policy_info{hash=%q} = %v (labels %v)", tc.hash, tc.label, v, m.Labels("frostmint_policy_info", "hash"))
		}
	}
}

func TestFailed(t *testing.T) {
	for _, tc := range []struct {
		err    error
		failed bool
	}{
		{nil, false},
		{status.Error(codes.PermissionDenied, "no"), false},
		{status.Error(codes.InvalidArgument, "no"), false},
		{status.Error(codes.Aborted, "stale"), false},
		{status.Error(codes.Unavailable, "audit"), true},
		{status.Error(codes.Internal, "bug"), true},
		{status.Error(codes.DataLoss, "disk"), true},
		{errors.New("not a status"), true}, // UNKNOWN
	} {
		if got := telemetry.Failed(tc.err); got != tc.failed {
			t.Errorf("Failed(%v) = %v, want %v", tc.err, got, tc.failed)
		}
	}
}
