package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	ceremonyv1 "github.com/frostmint/frostmint/proto/frostmint/ceremony/v1"
	sceremony "github.com/frostmint/frostmint/signer/ceremony"
	"github.com/frostmint/frostmint/verifier/mtls"
)

const ceremonyUsage = `usage: frostmint ceremony --coordinator ADDR --tls-cert F --tls-key F --ca F --threshold T [--signers 1,2,3]
       frostmint ceremony verify [--ca F] DIR

The first form runs a key ceremony (a FROST distributed key generation among
the coordinator's signers): progress goes to stderr, the new key's kid to
stdout. Each signer writes its outputs in <keys dir>/<kid>/. The second
checks such a directory's transcript.json (every signature, hash and key).
`

// ceremonyCmd implements "frostmint ceremony": it asks the coordinator's
// CeremonyService to run a key ceremony and reports its progress, or
// verifies a ceremony's transcript ("ceremony verify").
func ceremonyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "verify" {
		return ceremonyVerify(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("ceremony", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, ceremonyUsage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	coord := fs.String("coordinator", "", "coordinator `host:port` (required)")
	cert := fs.String("tls-cert", "", "your admin certificate `file` (required)")
	key := fs.String("tls-key", "", "its key `file` (required)")
	ca := fs.String("ca", "", "CA bundle `file` that the coordinator chains to (required)")
	threshold := fs.Uint("threshold", 0, "signatures needed with the new key, at least 2 (required)")
	signers := fs.String("signers", "", "comma-separated participating signer `ids`, exactly 1..n (default: every signer of the coordinator)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "frostmint ceremony: %s\n", msg)
		fs.Usage()
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments")
	}
	if *coord == "" || *cert == "" || *key == "" || *ca == "" {
		return usageErr("--coordinator, --tls-cert, --tls-key and --ca are required")
	}
	if *threshold < 2 || *threshold > sceremony.MaxParticipants {
		return usageErr(fmt.Sprintf("--threshold must be 2..%d", sceremony.MaxParticipants))
	}
	ids, err := parseSignerIDs(*signers)
	if err != nil {
		return usageErr("--signers: " + err.Error())
	}
	if len(ids) > 0 && int(*threshold) > len(ids) {
		return usageErr(fmt.Sprintf("--threshold %d is more than the %d signers", *threshold, len(ids)))
	}

	tc, err := mtls.ClientConfig(mtls.Files{Cert: *cert, Key: *key, CA: *ca})
	if err != nil {
		fmt.Fprintf(stderr, "frostmint ceremony: %v\n", err)
		return exitUsage
	}
	conn, err := grpc.NewClient(*coord, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		fmt.Fprintf(stderr, "frostmint ceremony: %v\n", err)
		return exitUsage
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	stream, err := ceremonyv1.NewCeremonyServiceClient(conn).Run(ctx, &ceremonyv1.RunRequest{Threshold: uint32(*threshold), SignerIds: ids})
	if err != nil {
		return ceremonyError(stderr, err)
	}
	var kid string
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ceremonyError(stderr, err)
		}
		printEvent(stderr, ev)
		if ev.GetKind() == ceremonyv1.EventKind_EVENT_KIND_DONE {
			kid = ev.GetKid()
		}
	}
	if kid == "" {
		fmt.Fprintln(stderr, "error: internal: the coordinator ended the ceremony without a result")
		return exitRejected
	}
	fmt.Fprintln(stdout, kid)
	return exitOK
}

// parseSignerIDs reads "1,2,3".
func parseSignerIDs(s string) ([]uint32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ids []uint32
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil || n == 0 || n > sceremony.MaxParticipants {
			return nil, fmt.Errorf("%q is not a signer id (1..%d)", f, sceremony.MaxParticipants)
		}
		if slices.Contains(ids, uint32(n)) {
			return nil, fmt.Errorf("signer %d is listed twice", n)
		}
		ids = append(ids, uint32(n))
	}
	if len(ids) < 2 {
		return nil, errors.New("a ceremony needs at least 2 signers")
	}
	return ids, nil
}

// printEvent writes one progress line.
func printEvent(w io.Writer, ev *ceremonyv1.RunResponse) {
	k := ev.GetParticipantId()
	switch ev.GetKind() {
	case ceremonyv1.EventKind_EVENT_KIND_STARTED:
		fmt.Fprintf(w, "ceremony %s: %d-of-%d key generation started\n", ev.GetCeremonyId(), ev.GetThreshold(), ev.GetMaxSigners())
	case ceremonyv1.EventKind_EVENT_KIND_ROUND1:
		fmt.Fprintf(w, "  signer %d: round 1: signed commitments received and verified\n", k)
	case ceremonyv1.EventKind_EVENT_KIND_ROUND2:
		fmt.Fprintf(w, "  signer %d: round 2: encrypted shares for its peers received and verified\n", k)
	case ceremonyv1.EventKind_EVENT_KIND_FINISHED:
		fmt.Fprintf(w, "  signer %d: derived its key share and signed the transcript\n", k)
	case ceremonyv1.EventKind_EVENT_KIND_COMMITTED:
		fmt.Fprintf(w, "  signer %d: sealed its share and wrote its outputs\n", k)
	case ceremonyv1.EventKind_EVENT_KIND_DONE:
		fmt.Fprintf(w, "ceremony %s: done: %d-of-%d key, kid %s, group key %s\n", ev.GetCeremonyId(), ev.GetThreshold(),
			ev.GetMaxSigners(), ev.GetKid(), base64.RawURLEncoding.EncodeToString(ev.GetGroupPublicKey()))
	case ceremonyv1.EventKind_EVENT_KIND_ABORTED:
		fmt.Fprintf(w, "ceremony %s: ABORTED: %s\n", ev.GetCeremonyId(), describeAbort(ev.GetBlame(), ev.GetDetail()))
	}
}

func describeAbort(b *ceremonyv1.Blame, detail string) string {
	if b == nil {
		return detail
	}
	who := func(id uint32) string {
		if id == uint32(sceremony.Relay) {
			return "the coordinator (relay)"
		}
		return fmt.Sprintf("signer %d", id)
	}
	return fmt.Sprintf("%s cheated (%s), detected by %s: %s", who(b.GetCulpritId()), sceremony.FaultName(b.GetFault()),
		who(b.GetReporterId()), b.GetReason())
}

// ceremonyError reports the final status of a failed ceremony call.
func ceremonyError(w io.Writer, err error) int {
	st, _ := status.FromError(err)
	var ce *sceremony.CheatError
	if errors.As(sceremony.FromStatus(err), &ce) {
		fmt.Fprintf(w, "error: aborted: %s\n", describeAbort(ce.Blame(), ""))
		return exitRejected
	}
	fmt.Fprintf(w, "error: %s: %s\n", snake(st.Code().String()), st.Message())
	return exitRejected
}

// ceremonyVerify implements "frostmint ceremony verify [--ca F] DIR".
func ceremonyVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ceremony verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: frostmint ceremony verify [--ca F] DIR\n\nDIR is a signer's <keys dir>/<kid>/.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	ca := fs.String("ca", "", "CA bundle `file` the signers' certificates chain to (without it, the certificates are not anchored)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "frostmint ceremony verify: one directory is required")
		fs.Usage()
		return exitUsage
	}
	var roots *x509.CertPool
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			fmt.Fprintf(stderr, "frostmint ceremony verify: %v\n", err)
			return exitUsage
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "frostmint ceremony verify: no certificate in %s\n", *ca)
			return exitUsage
		}
	}
	dir := fs.Arg(0)
	t, err := sceremony.VerifyDir(dir, roots)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitRejected
	}
	fmt.Fprintf(stdout, "%s: transcript verified\n", dir)
	fmt.Fprintf(stdout, "  ceremony %s at %s: %d-of-%d\n", t.CeremonyID, t.Time.UTC().Format(time.RFC3339), t.Threshold, t.MaxSigners)
	fmt.Fprintf(stdout, "  kid %s\n", t.KeyID)
	fmt.Fprintf(stdout, "  group key %s\n", base64.RawURLEncoding.EncodeToString(t.GroupPublicKey))
	for _, s := range t.Signatures {
		fmt.Fprintf(stdout, "  signed by signer %d: %s\n", s.ID, s.Identity)
	}
	if roots == nil {
		fmt.Fprintln(stderr, "warning: certificates not checked against a CA; give --ca to check who the signers are")
	}
	return exitOK
}
