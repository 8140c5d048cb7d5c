package verifier

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// FuzzMemoryReplayCache runs arbitrary sequences of Seen calls, over a few
// keys, expiries around the clock and clock steps, against a cache of a
// small size and against a plain map with the documented semantics: an
// entry lives while the clock is before its expiry; a key seen while it
// lives is a replay (and keeps its expiry); an expiry not after now
// records nothing; and a new key is refused with ErrReplayCacheFull when
// the live entries fill the cache. Every answer must be the model's, and
// the cache never holds more than its size.
func FuzzMemoryReplayCache(f *testing.F) {
	f.Add(uint8(2), []byte{0, 20, 0, 0, 20, 0, 1, 20, 0, 2, 20, 0, 0, 20, 4, 2, 20, 0})
	f.Add(uint8(0), []byte{0, 9, 0, 0, 8, 1, 0, 30, 0, 0, 9, 3})
	f.Add(uint8(3), []byte{0, 31, 0, 1, 12, 0, 2, 10, 0, 3, 11, 0, 4, 31, 2, 5, 20, 1, 1, 20, 0})
	f.Fuzz(func(t *testing.T, size uint8, ops []byte) {
		max := int(size%6) + 1
		now := time.Unix(1767225600, 0)
		c := NewMemoryReplayCache(max, func() time.Time { return now })
		model := map[string]time.Time{}
		for i := 0; i+2 < len(ops); i += 3 {
			now = now.Add(time.Duration(ops[i+2]%5) * time.Second)
			key := fmt.Sprintf("iss:%d", ops[i]%8)
			exp := now.Add(time.Duration(int(ops[i+1]%32)-8) * time.Second)

			live := 0
			for k, e := range model {
				if now.Before(e) {
					live++
				} else {
					delete(model, k)
				}
			}
			var want bool
			var wantFull bool
			switch e, ok := model[key]; {
			case ok && now.Before(e):
				want = true
			case !exp.After(now):
			case live >= max:
				wantFull = true
			default:
				model[key] = exp
			}

			got, err := c.Seen(context.Background(), key, exp)
			switch {
			case wantFull:
				if !errors.Is(err, ErrReplayCacheFull) {
					t.Fatalf("op %d: Seen(%s) = %v, %v; want ErrReplayCacheFull (%d live of %d)", i/3, key, got, err, live, max)
				}
			case err != nil || got != want:
				t.Fatalf("op %d: Seen(%s, %+ds) = %v, %v; want %v", i/3, key, exp.Sub(now)/time.Second, got, err, want)
			}
			c.checkInvariants(t)
			if n := c.Len(); n > max {
				t.Fatalf("op %d: the cache holds %d entries, its size is %d", i/3, n, max)
			}
		}
	})
}

// FuzzReplayKey checks that the replay key of a token names it alone: two
// (issuer, jti) pairs share a key exactly when they are equal, and the
// key built in a buffer is the key as a string.
func FuzzReplayKey(f *testing.F) {
	f.Add("https://a.example", "jti", "https://a.example", "jti")
	f.Add("a:", "b", "a", ":b")
	f.Add("1:a", "b", "1", "a:b")
	f.Add("", "3:abc", "3:abc", "")
	f.Fuzz(func(t *testing.T, iss1, jti1, iss2, jti2 string) {
		k1, k2 := replayKey(iss1, jti1), replayKey(iss2, jti2)
		if (k1 == k2) != (iss1 == iss2 && jti1 == jti2) {
			t.Fatalf("replayKey(%q, %q) = %q, replayKey(%q, %q) = %q", iss1, jti1, k1, iss2, jti2, k2)
		}
		if string(appendReplayKey(nil, iss1, jti1)) != k1 {
			t.Fatal("appendReplayKey differs from replayKey")
		}
	})
}
