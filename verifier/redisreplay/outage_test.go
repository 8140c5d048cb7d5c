package redisreplay_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/redisreplay"
	"github.com/frostmint/frostmint/verifier/redisreplay/redistest"
)

// Traffic goes on while Redis stops and restarts. No key is ever allowed
// twice, every call during the outage is refused, service resumes by
// itself, and keys recorded before the outage are still replays after it.
//
// Redis persists (appendonly yes, appendfsync always): without that, a
// restarted Redis forgets what it recorded (see
// TestVolatileRedisForgetsOnRestart), which is why the package doc
// requires it.
func TestMidTrafficOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("about 2s of traffic")
	}
	srv := redistest.StartWith(t, redistest.Options{Persistent: true})
	c := newCache(t, srv.Addr(), redisreplay.Config{})

	type call struct {
		key        string
		start, end time.Time
		seen       bool
		err        error
	}
	const (
		workers = 8
		// maxCalls bounds each worker's loop, whatever the timing.
		maxCalls = 200_000
	)
	hot := make([]string, 16) // keys every worker presents again and again
	for i := range hot {
		hot[i] = randomKey(t)
	}
	run := randomKey(t)
	exp := time.Now().Add(time.Hour)

	var (
		mu    sync.Mutex
		calls []call
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			var mine []call
			defer func() {
				mu.Lock()
				calls = append(calls, mine...)
				mu.Unlock()
			}()
			for i := range maxCalls {
				select {
				case <-stop:
					return
				default:
				}
				var key string
				switch i % 3 {
				case 0: // a new key
					key = fmt.Sprintf("%s:%d:%d", run, w, i)
				case 1: // the same key again: a replay
					key = fmt.Sprintf("%s:%d:%d", run, w, i-1)
				default: // a key others present too, concurrently
					key = hot[(w+i)%len(hot)]
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				start := time.Now()
				seen, err := c.Seen(ctx, key, exp)
				mine = append(mine, call{key, start, time.Now(), seen, err})
				cancel()
				if err != nil {
					time.Sleep(2 * time.Millisecond) // a refused client backs off
				}
			}
		})
	}

	time.Sleep(300 * time.Millisecond)
	stopping := time.Now()
	srv.Stop()
	stopped := time.Now()
	time.Sleep(700 * time.Millisecond)
	restarting := time.Now()
	srv.Restart()
	up := time.Now()
	// Wait for service to resume, then a little more traffic.
	deadline := up.Add(5 * time.Second)
	var resumed time.Time
	for resumed.IsZero() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if _, err := c.Seen(timeout(t, 2*time.Second), randomKey(t), exp); err == nil {
			resumed = time.Now()
		}
	}
	if resumed.IsZero() {
		close(stop)
		wg.Wait()
		t.Fatal("service did not resume within 5s of Redis's restart")
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	byKey := make(map[string][]call)
	var before, during, after, refused int
	for _, cl := range calls {
		byKey[cl.key] = append(byKey[cl.key], cl)
		if cl.err != nil {
			refused++
			if cl.seen {
				t.Errorf("Seen(%q) = true, %v: an answer with an error", cl.key, cl.err)
			}
			if !errors.Is(cl.err, redisreplay.ErrUnavailable) {
				t.Errorf("Seen(%q) = %v, want ErrUnavailable", cl.key, cl.err)
			}
		}
		switch {
		case cl.end.Before(stopping):
			before++
			if cl.err != nil {
				t.Errorf("Seen(%q) failed before the outage: %v", cl.key, cl.err)
			}
		case !cl.start.Before(stopped) && cl.end.Before(restarting):
			during++
			if cl.err == nil {
				t.Errorf("Seen(%q) = %v, nil while Redis was down", cl.key, cl.seen)
			}
		case !cl.start.Before(resumed) && cl.err == nil:
			after++
		}
	}
	if before == 0 || during == 0 || after == 0 {
		t.Fatalf("calls answered before the outage %d, refused during it %d, answered after it %d: want some of each",
			before, during, after)
	}

	// Never allowed twice: at most one first sighting per key, and none
	// after a call that had already found the key recorded.
	var firsts []string
	for key, cls := range byKey {
		var first *call
		for i := range cls {
			cl := &cls[i]
			if cl.err != nil || cl.seen {
				continue
			}
			if first != nil {
				t.Errorf("key %q allowed twice: at %s and %s", key, first.start.Format(time.StampMicro), cl.start.Format(time.StampMicro))
			}
			first = cl
		}
		if first == nil {
			continue
		}
		firsts = append(firsts, key)
		for _, cl := range cls {
			if cl.err == nil && cl.end.Before(first.start) {
				t.Errorf("key %q allowed at %s after a call had recorded it at %s",
					key, first.start.Format(time.StampMicro), cl.end.Format(time.StampMicro))
			}
		}
	}
	// What was recorded, before the outage or after, is still recorded.
	for _, key := range firsts {
		mustSeen(t, c, key, exp, true)
	}
	t.Logf("%d calls, %d refused; %d answered before the outage, %d refused during it, %d answered after; "+
		"%d keys recorded; resumed %s after Redis answered again",
		len(calls), refused, before, during, after, len(firsts), resumed.Sub(up).Round(time.Millisecond))
}
