package ceremony

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
)

// overTheWire is the error a gRPC client sees for err, a participant's
// status: grpc-go sends the status with its details as one encoded
// proto, and drops the details when that proto does not encode.
func overTheWire(t *testing.T, err error) (error, bool) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("participant error %v is not a status", err)
	}
	b, merr := proto.Marshal(st.Proto())
	if merr != nil {
		return status.Error(st.Code(), st.Message()), false
	}
	return status.FromProto(decoded(t, st.Proto(), b)).Err(), true
}

// decoded decodes b as a message of m's type.
func decoded[M proto.Message](t *testing.T, m M, b []byte) M {
	t.Helper()
	out := m.ProtoReflect().New().Interface().(M)
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzParticipantCall plays the relay against participant 1 of a 2-of-2
// key ceremony: it runs the ceremony genuinely up to a stage, then makes
// that stage's call (Begin, Exchange, Finish or Commit) with an arbitrary
// request, for this ceremony, filled with the genuine messages where the
// fuzzer left them out. Nothing may panic or hang; every failure is a
// status the relay can be told (it encodes, a cheat keeps its Blame
// across the wire, and it is never the INTERNAL of an unforeseen error);
// and a participant never blames itself.
func FuzzParticipantCall(f *testing.F) {
	u := newUnit(f, 2, 2, nil)
	add := func(stage uint8, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(stage, b)
	}
	add(0, u.params.BeginRequest())
	late := u.params.BeginRequest()
	late.StartedAt.Seconds += 3600
	add(0, late)
	add(0, &ceremonyv1.BeginRequest{CeremonyId: "x", Threshold: 2, MaxSigners: 2})
	add(1, &ceremonyv1.ExchangeRequest{})
	add(1, &ceremonyv1.ExchangeRequest{Packages: []*ceremonyv1.Round1Package{{Body: []byte{1}}}})
	add(1, &ceremonyv1.ExchangeRequest{Packages: []*ceremonyv1.Round1Package{{}, {}}})
	add(2, &ceremonyv1.FinishRequest{})
	add(2, &ceremonyv1.FinishRequest{Envelopes: []*ceremonyv1.Round2Envelope{{Body: []byte{1}, Signature: []byte{2}}}})
	add(3, &ceremonyv1.CommitRequest{})
	add(3, &ceremonyv1.CommitRequest{TranscriptSha256: []byte{1}})
	add(3, &ceremonyv1.CommitRequest{Signatures: []*ceremonyv1.TranscriptSignature{{ParticipantId: 1}, {ParticipantId: 2, Signature: []byte{1}}}})
	run := 0
	f.Fuzz(func(t *testing.T, stage uint8, b []byte) {
		// A ceremony of its own: a committed one stays known.
		run++
		u.params.CeremonyID = fmt.Sprintf("fuzz-%d-%d", time.Now().UnixNano(), run)
		p := u.ps[1]
		id := u.params.CeremonyID
		defer func() {
			for _, q := range u.ps {
				_, _ = q.Abort(context.Background(), &ceremonyv1.AbortRequest{CeremonyId: id})
			}
		}()
		var st *state
		if stage%4 > 0 {
			st = u.begin(t)
		}
		if stage%4 > 1 {
			u.exchange(t, st)
		}
		if stage%4 > 2 {
			u.finish(t, st)
		}
		var call func() error
		switch stage % 4 {
		case 0:
			var req ceremonyv1.BeginRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			id = req.GetCeremonyId()
			call = func() error { _, err := p.Begin(context.Background(), &req); return err }
		case 1:
			var req ceremonyv1.ExchangeRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			req.CeremonyId = id
			if len(req.Packages) == 0 {
				req.Packages = u.packages(st)
			}
			call = func() error { _, err := p.Exchange(context.Background(), &req); return err }
		case 2:
			var req ceremonyv1.FinishRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			req.CeremonyId = id
			if len(req.Envelopes) == 0 {
				req.Envelopes = st.inbox[1]
			}
			call = func() error { _, err := p.Finish(context.Background(), &req); return err }
		default:
			var req ceremonyv1.CommitRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			req.CeremonyId = id
			if len(req.TranscriptSha256) == 0 {
				req.TranscriptSha256 = st.hash
			}
			if len(req.Signatures) == 0 {
				req.Signatures = st.sigs
			}
			call = func() error { _, err := p.Commit(context.Background(), &req); return err }
		}

		done := make(chan error, 1)
		go func() { done <- call() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("stage %d: no answer within 10s", stage%4)
		}
		if err == nil {
			return
		}
		if status.Code(err) == codes.Internal {
			t.Fatalf("stage %d: an unforeseen error: %v", stage%4, err)
		}
		local := FromStatus(err)
		var ce *CheatError
		isCheat := errors.As(local, &ce)
		if isCheat && ce.Culprit == 1 {
			t.Fatalf("participant 1 blames itself: %v", ce)
		}
		remote, ok := overTheWire(t, err)
		if !ok && isCheat {
			t.Fatalf("the blame %v cannot be sent", ce)
		}
		var rce *CheatError
		if isCheat && (!errors.As(FromStatus(remote), &rce) || *rce != *ce) {
			t.Fatalf("the blame %v arrived as %v", ce, FromStatus(remote))
		}
	})
}
