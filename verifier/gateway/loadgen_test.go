package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkGatewayOverhead measures what the gateway adds to a request.
//
// One tiny upstream sits behind two proxies on loopback: a plain
// httputil.ReverseProxy (with the gateway's upstream transport), and the
// gateway (in-memory replay store, one single-use route requiring a scope,
// so every request takes the real path: parse, Ed25519 verification,
// claims, replay record, header rewrite). One closed-loop load drives
// both: C concurrent clients with keep-alive connections, each sending
// request i to both proxies in turn (b.N to each; each gateway request
// with its own pre-minted token). Per-request latencies give p50 and p99
// for both, and the overhead is the gateway's minus the plain proxy's.
//
// With clients=1 nothing queues, and the overhead is the latency the
// gateway adds to a request. With clients=16 the machine is saturated
// (clients, proxies and upstream share its cores) and latency is mostly
// queueing, shared by both since their requests interleave: the
// difference there is the gateway's own work under load.
func BenchmarkGatewayOverhead(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok"))
	}))
	defer up.Close()
	upURL, err := url.Parse(up.URL)
	if err != nil {
		b.Fatal(err)
	}
	plain := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upURL)
			pr.SetXForwarded()
		},
		Transport:     newTransport(false),
		FlushInterval: -1,
	})
	defer plain.Close()

	cfg := baseConfig(b, up.URL)
	g, err := New(b.Context(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	gw := httptest.NewServer(g)
	defer gw.Close()

	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			// One client per target: keep-alive connections, no
			// handshakes in the measurements.
			newClient := func() *http.Client {
				tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, DisableCompression: true}
				b.Cleanup(tr.CloseIdleConnections)
				return &http.Client{Transport: tr}
			}
			const warmup = 500
			tokens := mintMany(b, b.N+warmup)
			targets := []target{
				{client: newClient(), url: plain.URL},
				{client: newClient(), url: gw.URL, tokens: tokens[b.N:]},
			}
			drive(b, targets, clients, warmup)

			b.ResetTimer()
			targets[1].tokens = tokens[:b.N]
			lat := drive(b, targets, clients, b.N)
			b.StopTimer()
			plainLat, gwLat := lat[0], lat[1]

			p50p, p99p := percentile(plainLat, 50), percentile(plainLat, 99)
			p50g, p99g := percentile(gwLat, 50), percentile(gwLat, 99)
			µs := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			b.ReportMetric(µs(p50p), "p50-plain-µs")
			b.ReportMetric(µs(p99p), "p99-plain-µs")
			b.ReportMetric(µs(p50g), "p50-gateway-µs")
			b.ReportMetric(µs(p99g), "p99-gateway-µs")
			b.ReportMetric(µs(p50g-p50p), "p50-overhead-µs")
			b.ReportMetric(µs(p99g-p99p), "p99-overhead-µs")
		})
	}
}

// mintMany mints n fresh tokens granting "read", in parallel.
func mintMany(b *testing.B, n int) []string {
	tokens := make([]string, n)
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c := claims()
				c.Scope = "read"
				tok, err := sign(issuerKey, c)
				if err != nil {
					failed.Store(true)
					return
				}
				tokens[i] = tok
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		b.Fatal("minting failed")
	}
	return tokens
}

// target is a server the load generator sends requests to.
type target struct {
	client *http.Client
	url    string
	// tokens, if not nil, holds a token for each request.
	tokens []string
}

// drive sends n GET requests to each target with clients concurrent
// keep-alive clients. Each client takes the next index i and sends request
// i to every target in turn, starting with a different target each time,
// so that whatever the machine does meanwhile (GC, other processes) hits
// every target alike. Request i to a target with tokens carries tokens[i].
// drive returns each target's latencies. Any answer but 200 fails the
// benchmark.
func drive(b *testing.B, targets []target, clients, n int) [][]time.Duration {
	lat := make([][]time.Duration, len(targets))
	for i := range lat {
		lat[i] = make([]time.Duration, n)
	}
	var next atomic.Int64
	var bad atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				for k := range targets {
					j := (i + k) % len(targets)
					tg := &targets[j]
					req, err := http.NewRequest("GET", tg.url+"/bench", nil)
					if err != nil {
						bad.Add(1)
						return
					}
					if tg.tokens != nil {
						req.Header.Set("Authorization", "Bearer "+tg.tokens[i])
					}
					t0 := time.Now()
					resp, err := tg.client.Do(req)
					if err != nil {
						bad.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					lat[j][i] = time.Since(t0)
					if resp.StatusCode != 200 {
						bad.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() > 0 {
		b.Fatalf("%d of %d requests failed", bad.Load(), n*len(targets))
	}
	return lat
}

// percentile returns the p-th percentile of lat (nearest rank).
func percentile(lat []time.Duration, p int) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}
