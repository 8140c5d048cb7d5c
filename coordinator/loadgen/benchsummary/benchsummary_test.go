package benchsummary

import (
	"slices"
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/frostmint/frostmint/verifier
BenchmarkVerifyRatio-2             	   15910	     36653 ed25519-ns/op	     38813 verify-ns/op	         1.059 x-ed25519	    1766 B/op	       4 allocs/op
pkg: github.com/frostmint/frostmint/verifier/gateway
BenchmarkGatewayOverhead/clients=1-2         	    6272	    189182 ns/op	        99.80 p50-gateway-µs	        44.63 p50-overhead-µs	        55.17 p50-plain-µs
BenchmarkGatewayOverhead/clients=16-2        	   11355	    103136 ns/op	       716.6 p50-gateway-µs	        22.13 p50-overhead-µs
pkg: github.com/frostmint/frostmint/verifier
BenchmarkReplayCacheBytesPerEntry-2   	       2	 662007736 ns/op	       152.2 bytes/entry
pkg: github.com/frostmint/frostmint/policy
BenchmarkEvaluate-2   	    4710	    253007 ns/op	   58595 B/op	    1347 allocs/op
pkg: github.com/frostmint/frostmint/signer/frost
BenchmarkMint2of3-2   	    2239	    526555 ns/op	   23067 B/op	     385 allocs/op
pkg: github.com/frostmint/frostmint/coordinator
BenchmarkMint2of3-2              	     168	   7771448 ns/op	  288725 B/op	    5528 allocs/op
frostmint bench: 2-of-3 cluster on loopback
mint      189.7 mints/s  p50   4.837 ms
mint_t2n3_seq 189.7 mints/s
mint_t2n3_seq_p50 4.837 ms
mint_t2n3_seq_p99 10.662 ms
mint_t2n3_seq_baseline_p50 0.163 ms
mint_t2n3_seq_vs_baseline_p50 29.64 x
mint_t2n3_c64 1500.5 mints/s
mint_t2n3_c64_rss_idle_coordinator 43.5 MiB
mint_t2n3_c64_rss_load_coordinator 46.1 MiB
mint_t2n3_c64_rss_idle_signer_1 74.5 MiB
mint_t2n3_c64_rss_idle_signer_2 75.5 MiB
mint_t2n3_c64_rss_load_signer_1 101.2 MiB
mint_t2n3_c64_rss_load_signer_2 99 MiB
mint_t3n5_c64 900 mints/s
`

func TestSummary(t *testing.T) {
	figs := map[string]figure{}
	if err := collect(strings.NewReader(sample), figs); err != nil {
		t.Fatal(err)
	}
	derive(figs)
	out, missing := summary(figs)
	if len(missing) != 0 {
		t.Fatalf("missing %v", missing)
	}
	var lines []string
	for _, f := range out {
		lines = append(lines, f.String())
	}
	want := []string{
		"mint_t2n3_seq_p50 4.837 ms",
		"mint_t2n3_seq_p99 10.662 ms",
		"mint_t2n3_c64 1500.5 mints/s",
		"mint_t3n5_c64 900 mints/s",
		"verify_over_raw 1.059 x",
		"gateway_p50_overhead 44.63 us",
		"rss_idle_coordinator 43.5 MiB",
		"rss_load_coordinator 46.1 MiB",
		"rss_idle_signer 75.5 MiB",
		"rss_load_signer 101.2 MiB",
		"replay_cache_bytes_per_entry 152.2 bytes",
		// then the rest, by name
		"coordinator_mint_2of3_inprocess 7771.448 us",
		"frost_session_2of3 526.555 us",
		"mint_t2n3_seq 189.7 mints/s",
		"mint_t2n3_seq_vs_baseline_p50 29.64 x",
		"policy_eval 253.007 us",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("summary:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestSummaryMissing(t *testing.T) {
	figs := map[string]figure{}
	if err := collect(strings.NewReader("mint_t2n3_c64 10 mints/s\n"), figs); err != nil {
		t.Fatal(err)
	}
	_, missing := summary(figs)
	if len(missing) != len(required)-1 || slices.Contains(missing, "mint_t2n3_c64") {
		t.Fatalf("missing %v", missing)
	}
}
