package ceremony_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	relay "github.com/frostmint/frostmint/coordinator/ceremony"
	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	sceremony "github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/signer/ceremony/ceremonytest"
)

// tampering is participant 2 as a cheater: a genuine participant whose
// answer at one stage is replaced by, or merged with, the fuzzer's.
type tampering struct {
	relay.Participant
	stage uint8 // 0 begin, 1 exchange, 2 finish, 3 commit
	merge bool
	b     []byte
}

// answer returns what the cheater sends instead of genuine at stage.
func answer[M proto.Message](t *tampering, stage uint8, genuine M, err error) (M, error) {
	if err != nil || t.stage != stage {
		return genuine, err
	}
	out := genuine.ProtoReflect().New().Interface().(M)
	if t.merge {
		out = proto.Clone(genuine).(M)
	}
	if uerr := (proto.UnmarshalOptions{Merge: true}).Unmarshal(t.b, out); uerr != nil {
		return genuine, nil
	}
	return out, nil
}

func (t *tampering) Begin(ctx context.Context, r *ceremonyv1.BeginRequest) (*ceremonyv1.BeginResponse, error) {
	resp, err := t.Participant.Begin(ctx, r)
	return answer(t, 0, resp, err)
}

func (t *tampering) Exchange(ctx context.Context, r *ceremonyv1.ExchangeRequest) (*ceremonyv1.ExchangeResponse, error) {
	resp, err := t.Participant.Exchange(ctx, r)
	return answer(t, 1, resp, err)
}

func (t *tampering) Finish(ctx context.Context, r *ceremonyv1.FinishRequest) (*ceremonyv1.FinishResponse, error) {
	resp, err := t.Participant.Finish(ctx, r)
	return answer(t, 2, resp, err)
}

func (t *tampering) Commit(ctx context.Context, r *ceremonyv1.CommitRequest) (*ceremonyv1.CommitResponse, error) {
	resp, err := t.Participant.Commit(ctx, r)
	return answer(t, 3, resp, err)
}

// FuzzRelay runs 2-of-2 key ceremonies through the coordinator's relay in
// which participant 2 answers one stage (Begin, Exchange, Finish or
// Commit) with arbitrary bytes, in place of or over its genuine answer.
// Nothing may panic or hang; a ceremony that completes yields a
// transcript that verifies and the group participant 1 wrote; one that
// fails is an *AbortError, and a cheat it names is never the honest
// participant 1's, and is participant 2's whenever the relay itself
// detected it.
func FuzzRelay(f *testing.F) {
	c := ceremonytest.Start(f, ceremonytest.Options{N: 2})
	add := func(stage uint8, merge bool, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(stage, merge, b)
	}
	add(0, true, &ceremonyv1.BeginResponse{})
	add(0, false, &ceremonyv1.BeginResponse{Package: &ceremonyv1.Round1Package{Body: []byte{1}}})
	add(0, true, &ceremonyv1.BeginResponse{Package: &ceremonyv1.Round1Package{CertificateChain: [][]byte{{0x30}}}})
	add(1, true, &ceremonyv1.ExchangeResponse{})
	add(1, true, &ceremonyv1.ExchangeResponse{Envelopes: []*ceremonyv1.Round2Envelope{{}}})
	add(1, false, &ceremonyv1.ExchangeResponse{Envelopes: []*ceremonyv1.Round2Envelope{{Body: []byte{1}, Signature: []byte{2}}}})
	add(2, true, &ceremonyv1.FinishResponse{})
	add(2, true, &ceremonyv1.FinishResponse{TranscriptSignature: []byte{1}})
	add(2, false, &ceremonyv1.FinishResponse{GroupPublicKey: make([]byte, 32)})
	add(3, true, &ceremonyv1.CommitResponse{})
	add(3, false, &ceremonyv1.CommitResponse{Kid: "other"})
	r, err := relay.NewRelay(relay.Config{Roots: func() *x509.CertPool { return c.Roots }, RoundTimeout: 10 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, stage uint8, merge bool, b []byte) {
		parts := map[uint16]relay.Participant{
			1: c.Members[1].Participant,
			2: &tampering{Participant: c.Members[2].Participant, stage: stage % 4, merge: merge, b: b},
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := r.Run(ctx, parts, 2, nil)
		if err != nil {
			var ae *relay.AbortError
			if !errors.As(err, &ae) {
				t.Fatalf("Run = %v, want an *AbortError", err)
			}
			var ce *sceremony.CheatError
			if errors.As(err, &ce) && (ce.Culprit == 1 || ce.Reporter == sceremony.Relay && ce.Culprit != 2) {
				t.Fatalf("stage %d: the cheat is blamed on %d (reported by %d): %v", stage%4, ce.Culprit, ce.Reporter, err)
			}
			return
		}
		tr, err := sceremony.VerifyTranscript(res.Transcript, c.Roots)
		if err != nil {
			t.Fatalf("a ceremony completed with a transcript that does not verify: %v", err)
		}
		g, err := sceremony.VerifyDir(c.Members[1].KeysDir+"/"+res.Kid, c.Roots)
		if err != nil || !bytes.Equal(g.GroupPublicKey, tr.GroupPublicKey) || !bytes.Equal(res.Group.PublicKey, tr.GroupPublicKey) {
			t.Fatalf("participant 1 wrote another group than the relay's (%v)", err)
		}
	})
}
