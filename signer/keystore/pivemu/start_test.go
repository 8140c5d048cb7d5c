//go:build cgo && unix

package pivemu

import "testing"

func TestVPCDAddrs(t *testing.T) {
	got, err := vpcdAddrs(2)
	if err != nil || got[0] != "127.0.0.1:35963" || got[1] != "127.0.0.1:35964" {
		t.Fatalf("default: %v, %v", got, err)
	}
	t.Setenv(EnvVPCDAddr, "[::1]:40000")
	if got, err := vpcdAddrs(2); err != nil || got[1] != "[::1]:40001" {
		t.Fatalf("override: %v, %v", got, err)
	}
	for _, bad := range []string{"localhost", "host:port"} {
		t.Setenv(EnvVPCDAddr, bad)
		if _, err := vpcdAddrs(1); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	t.Setenv(EnvVPCDAddr, "")
	if _, err := vpcdAddrs(3); err == nil {
		t.Error("three cards accepted")
	}
}
