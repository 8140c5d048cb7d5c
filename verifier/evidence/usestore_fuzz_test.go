package evidence

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// FuzzMemoryUseStore runs arbitrary sequences of Use calls, over a few
// pieces of evidence, tokens (bound values), expiries around the clock and
// clock steps, against a store of a small size and against a plain map
// with the documented semantics: an expiry not after now is ErrExpired; a
// live key bound to another token is ErrReused (evidence never mints two
// tokens); the same token again succeeds and extends the entry; a key
// that is not live is refused with ErrStoreFull while the live entries
// fill the store. Every answer must be the model's, and the store never
// holds more than its size.
func FuzzMemoryUseStore(f *testing.F) {
	f.Add(uint8(2), []byte{0, 0, 20, 0, 0, 1, 20, 0, 0, 0, 25, 0, 1, 0, 20, 0, 2, 0, 20, 0, 0, 1, 20, 4})
	f.Add(uint8(0), []byte{0, 3, 20, 0, 0, 0, 8, 0, 0, 0, 9, 2, 0, 1, 20, 0})
	f.Add(uint8(3), []byte{0, 0, 31, 0, 1, 0, 12, 0, 2, 0, 10, 0, 3, 0, 11, 0, 4, 0, 31, 2, 5, 0, 20, 1})
	f.Fuzz(func(t *testing.T, size uint8, ops []byte) {
		type entry struct {
			bound string
			until time.Time
		}
		max := int(size%6) + 1
		now := time.Unix(1767225600, 0)
		s := NewMemoryUseStore(max, func() time.Time { return now })
		model := map[string]entry{}
		for i := 0; i+3 < len(ops); i += 4 {
			now = now.Add(time.Duration(ops[i+3]%5) * time.Second)
			key := fmt.Sprintf("cert:%d", ops[i]%8)
			bound := fmt.Sprintf("jti-%d", ops[i+1]%3)
			if ops[i+1]%16 == 15 {
				bound = ""
			}
			until := now.Add(time.Duration(int(ops[i+2]%32)-8) * time.Second)

			live := 0
			for k, e := range model {
				if now.Before(e.until) {
					live++
				} else {
					delete(model, k)
				}
			}
			var want error
			switch e, ok := model[key]; {
			case bound == "":
				want = ErrInvalid
			case !until.After(now):
				want = ErrExpired
			case ok && e.bound != bound:
				want = ErrReused
			case ok:
				if until.After(e.until) {
					model[key] = entry{bound, until}
				}
			case live >= max:
				want = ErrStoreFull
			default:
				model[key] = entry{bound, until}
			}

			err := s.Use(context.Background(), key, bound, until)
			if want == nil && err != nil || want != nil && !errors.Is(err, want) {
				t.Fatalf("op %d: Use(%s, %s, %+ds) = %v, want %v (%d live of %d)", i/4, key, bound, until.Sub(now)/time.Second, err, want, live, max)
			}
			if n := s.Len(); n > max {
				t.Fatalf("op %d: the store holds %d entries, its size is %d", i/4, n, max)
			}
		}
	})
}
