package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/coordinator/client"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Minter mints one token per call to Mint.
type Minter interface {
	Mint(ctx context.Context) error
	Close() error
}

// Dialer makes the Minter of one caller.
type Dialer func() (Minter, error)

// certMinter is a certificate caller of the Mint API.
type certMinter struct {
	c      *client.Client
	aud    string
	scopes []string
	// distinct, when set, makes every mint ask for its own audience:
	// aud/<distinct>-<n>.
	distinct string
	n        int
}

func (m *certMinter) Mint(ctx context.Context) error {
	aud := m.aud
	if m.distinct != "" {
		m.n++
		aud = m.aud + "/" + m.distinct + "-" + strconv.Itoa(m.n)
	}
	_, err := m.c.Mint(ctx, aud, m.scopes, 0)
	return err
}

func (m *certMinter) Close() error { return m.c.Close() }

// CertCallers returns a Dialer of certificate callers of the Mint API at
// addr, as `frostmint mint` is one: each caller has its own mTLS
// connection and signs each request afresh (a new nonce and timestamp)
// with the certificate's key. They ask for aud and scopes with the
// default lifetime. Every caller is the same identity (caller).
func CertCallers(addr string, caller mtls.Files, aud string, scopes []string) Dialer {
	return certCallers(addr, caller, aud, scopes, false)
}

// DistinctCertCallers is CertCallers whose every mint asks for an audience
// of its own (aud, a slash, then a number no other mint of the run asks
// for): no two requests are alike, so no daemon can remember a policy
// decision from one mint for the next (see policy.Engine.Memoized).
func DistinctCertCallers(addr string, caller mtls.Files, aud string, scopes []string) Dialer {
	return certCallers(addr, caller, aud, scopes, true)
}

func certCallers(addr string, caller mtls.Files, aud string, scopes []string, distinct bool) Dialer {
	var callers atomic.Int64
	return func() (Minter, error) {
		c, err := client.Dial(addr, caller)
		if err != nil {
			return nil, err
		}
		m := &certMinter{c: c, aud: aud, scopes: scopes}
		if distinct {
			m.distinct = strconv.FormatInt(callers.Add(1), 10)
		}
		return m, nil
	}
}

// Load is how a run loads a service.
type Load struct {
	// Callers is the number of concurrent callers, each minting again as
	// soon as its last mint returns (a closed loop).
	Callers int
	// Warmup is run first, under the same load, and not measured.
	Warmup time.Duration
	// Duration is the measured window.
	Duration time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// OnWindow, if set, is called when the measured window starts (true)
	// and when it ends (false), on timers of the real clock (so not with a
	// fake Now): to sample what the window cost.
	OnWindow func(start bool)
}

// Result is what one run measured: the mints that completed within the
// measured window.
type Result struct {
	Callers int
	Window  time.Duration
	// OK and Failed count the mints that completed in the window.
	OK, Failed int
	// Failures counts failed mints by gRPC code ("Unavailable", …, or
	// "other" for a local error); FirstFailure is one's message.
	Failures     map[string]int
	FirstFailure string
	// Latency percentiles of the successful mints (nearest rank).
	P50, P90, P99, Max time.Duration
}

// Throughput is successful mints per second.
func (r Result) Throughput() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.OK) / r.Window.Seconds()
}

// callerResult is what one caller saw.
type callerResult struct {
	lat      []time.Duration
	failures map[string]int
	first    error
}

// Drive runs l.Callers callers made by dial for l.Warmup plus l.Duration,
// and returns what completed in the measured window. It fails when a
// caller cannot be made or ctx ends early; failed mints are results, not
// errors.
func Drive(ctx context.Context, dial Dialer, l Load) (Result, error) {
	if l.Callers < 1 || l.Duration <= 0 || l.Warmup < 0 {
		return Result{}, errors.New("loadgen: a run needs at least one caller and a positive duration")
	}
	now := l.Now
	if now == nil {
		now = time.Now
	}
	minters := make([]Minter, 0, l.Callers)
	defer func() {
		for _, m := range minters {
			m.Close()
		}
	}()
	for range l.Callers {
		m, err := dial()
		if err != nil {
			return Result{}, fmt.Errorf("loadgen: caller: %w", err)
		}
		minters = append(minters, m)
	}
	from := now().Add(l.Warmup)
	until := from.Add(l.Duration)
	if l.OnWindow != nil {
		start := time.AfterFunc(time.Until(from), func() { l.OnWindow(true) })
		end := time.AfterFunc(time.Until(until), func() { l.OnWindow(false) })
		defer start.Stop()
		defer end.Stop()
	}
	results := make([]callerResult, len(minters))
	var wg sync.WaitGroup
	for i, m := range minters {
		wg.Go(func() { results[i] = drive(ctx, m, from, until, now) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return merge(results, l.Callers, l.Duration), nil
}

// drive is one caller's closed loop: mint, and again, until until. It
// keeps the mints that complete in [from, until).
func drive(ctx context.Context, m Minter, from, until time.Time, now func() time.Time) callerResult {
	r := callerResult{failures: map[string]int{}}
	for ctx.Err() == nil {
		t0 := now()
		if !t0.Before(until) {
			break
		}
		err := m.Mint(ctx)
		t1 := now()
		if t1.Before(from) || !t1.Before(until) {
			continue
		}
		if err != nil {
			r.failures[failureCode(err)]++
			if r.first == nil {
				r.first = err
			}
			continue
		}
		r.lat = append(r.lat, t1.Sub(t0))
	}
	return r
}

func failureCode(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Code().String()
	}
	return "other"
}

func merge(rs []callerResult, callers int, window time.Duration) Result {
	res := Result{Callers: callers, Window: window, Failures: map[string]int{}}
	var all []time.Duration
	for _, r := range rs {
		all = append(all, r.lat...)
		for code, n := range r.failures {
			res.Failures[code] += n
			res.Failed += n
		}
		if r.first != nil && res.FirstFailure == "" {
			res.FirstFailure = r.first.Error()
		}
	}
	res.OK = len(all)
	slices.Sort(all)
	res.P50, res.P90, res.P99 = percentile(all, 0.50), percentile(all, 0.90), percentile(all, 0.99)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
	return res
}

// percentile returns the nearest-rank q-quantile of sorted d (0 if empty):
// the smallest value that at least q of the values do not exceed.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
