package frost

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestConcurrentCommitsRespectLimit: Commit takes the lock per nonce, yet
// concurrent batches never make more nonces than the limit between them,
// and a refused batch makes none.
func TestConcurrentCommitsRespectLimit(t *testing.T) {
	kss := runDKG(t, 2, 3)
	g, err := NewGroup(kss[0].Public)
	if err != nil {
		t.Fatal(err)
	}
	const limit, batch, callers = 40, 8, 10
	s, err := NewSigner(g, kss[0].Secret, limit)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		made    int
		refused int
	)
	for range callers {
		wg.Go(func() {
			cs, err := s.Commit(batch, time.Now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrTooManyNonces):
				refused++
			case err != nil:
				t.Error(err)
			default:
				made += len(cs)
			}
		})
	}
	wg.Wait()
	if made != limit || refused != callers-limit/batch {
		t.Fatalf("made %d nonces, %d batches refused; want %d and %d", made, refused, limit, callers-limit/batch)
	}
	if n := s.Outstanding(); n != limit {
		t.Fatalf("Outstanding() = %d, want %d", n, limit)
	}
}

// TestCommitAfterClose: a closed Signer makes no nonce, signs nothing
// (not even with a nonce it committed to before), no longer holds its
// share, and still tells its id.
func TestCommitAfterClose(t *testing.T) {
	kss := runDKG(t, 2, 3)
	g, err := NewGroup(kss[0].Public)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(g, kss[0].Secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewSigner(g, kss[1].Secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var cs []Commitment
	for _, sg := range []*Signer{s, other} {
		enc, err := sg.Commit(1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := g.DecodeCommitment(enc[0])
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	list, err := g.EncodeList(cs)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Sign([]byte("m"), list); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("Sign after Close = %v, want ErrInvalidInput", err)
	}
	if s.s.KeyShare != nil {
		t.Fatal("the closed signer still holds its share")
	}
	if id := s.ID(); id != kss[0].ID {
		t.Fatalf("ID() = %d after Close, want %d", id, kss[0].ID)
	}
	if _, err := s.Commit(1, time.Now()); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("Commit after Close = %v, want ErrInvalidInput", err)
	}
	if n := s.Outstanding(); n != 0 {
		t.Fatalf("Outstanding() = %d after Close, want 0", n)
	}
}

// BenchmarkSignDuringCommit is one Sign while another goroutine makes
// commitments in batches, as a coordinator's background refill does: with
// the lock taken per nonce, a Sign waits for at most one nonce.
func BenchmarkSignDuringCommit(b *testing.B) {
	c := newCluster(b, 2, 3)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.signers[2].Commit(32, time.Now()); err != nil {
				c.signers[2].Expire(time.Now().Add(time.Hour))
			}
		}
	})
	msg := []byte("benchmark message")
	for b.Loop() {
		if _, err := c.sign(b, msg, 0, 1); err != nil {
			b.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
