package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/client"
	"github.com/frostmint/frostmint/coordinator/devcluster"
	"github.com/frostmint/frostmint/policy/audit"
	mintv1 "github.com/frostmint/frostmint/proto/frostmint/mint/v1"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/evidence"
	"github.com/frostmint/frostmint/verifier/gateway"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/mtls"
	"github.com/frostmint/frostmint/verifier/telemetry"
)

const usage = `frostmint mints short-lived tokens that no single machine can mint alone.

Usage:
  frostmint dev up --dir DIR [--signers N --threshold T]   run a local cluster
  frostmint dev signer --dir DIR --id N                    (re)start one dev signer
  frostmint demo [--dir DIR]                               start a cluster, mint, verify, stop
  frostmint mint --cluster FILE --audience AUD --scope S   mint a token (stdout)
  frostmint verify --jwks SRC --issuer ISS --audience AUD [--scope S] [TOKEN|-]
  frostmint audit verify FILE...                           check audit log chains
  frostmint audit diff --cluster FILE                      compare the coordinator's log with the signers'
  frostmint gateway --config FILE                          run the verifying reverse proxy (or the one-route flags:
                                                           --listen --upstream --issuer --audience [--jwks --scope --redis])
  frostmint coordinator --config FILE                      run the coordinator daemon
  frostmint signer --config FILE                           run a signer daemon
  frostmint guardian enroll --id N --keystore URI ...      enrol this workstation as a guardian
  frostmint guardian run --config FILE                     run a guardian (dials out to the coordinator)
  frostmint keys list|activate|retire --keys-dir DIR [KID] manage key epochs (rotation)
  frostmint ceremony --coordinator ADDR --tls-cert F --tls-key F --ca F --threshold T [--signers 1,2,3]
                                                           run a key ceremony among the coordinator's signers
  frostmint ceremony verify [--ca F] DIR                   check a ceremony's transcript
  frostmint bench [--callers N --duration D ...]           measure minting against a local cluster (make bench)

Run "frostmint COMMAND --help" for a command's flags.
`

// exit codes
const (
	exitOK       = 0
	exitRejected = 1
	exitUsage    = 2
)

type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{stdin, stdout, stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "dev":
		if len(args) < 2 {
			fmt.Fprint(stderr, "usage: frostmint dev up|signer ...\n")
			return exitUsage
		}
		switch args[1] {
		case "up":
			return e.devUp(ctx, args[2:])
		case "signer":
			return e.devSigner(ctx, args[2:])
		}
		fmt.Fprintf(stderr, "frostmint dev: unknown command %q\n", args[1])
		return exitUsage
	case "demo":
		return e.demo(ctx, args[1:])
	case "mint":
		return e.mint(ctx, args[1:])
	case "verify":
		return e.verify(ctx, args[1:])
	case "audit":
		if len(args) < 2 {
			fmt.Fprint(stderr, "usage: frostmint audit verify|diff ...\n")
			return exitUsage
		}
		switch args[1] {
		case "verify":
			return e.auditVerify(args[2:])
		case "diff":
			return e.auditDiff(args[2:])
		}
		fmt.Fprintf(stderr, "frostmint audit: unknown command %q\n", args[1])
		return exitUsage
	case "gateway":
		return gateway.Main(ctx, args[1:], stdout, stderr)
	case "keys":
		return e.keys(args[1:])
	case "ceremony":
		return ceremonyCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "guardian":
		return e.guardian(ctx, args[1:])
	case "coordinator":
		return e.daemon(ctx, "coordinator", args[1:], coordinator.RunConfigFile)
	case "signer":
		return e.daemon(ctx, "signer", args[1:], signer.RunConfigFile)
	}
	fmt.Fprintf(stderr, "frostmint: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

func (e env) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: frostmint %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; it returns an exit code when the command must stop.
func (e env) parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

func (e env) usageErr(fs *flag.FlagSet, msg string) int {
	fmt.Fprintf(e.stderr, "frostmint %s: %s\n", fs.Name(), msg)
	fs.Usage()
	return exitUsage
}

func (e env) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, nil))
}

func (e env) daemon(ctx context.Context, name string, args []string, run func(context.Context, string, *slog.Logger) error) int {
	fs := e.flags(name, name+" --config FILE [--log-format json|text]")
	config := fs.String("config", "", "JSON config `file` (required)")
	logFormat := fs.String("log-format", telemetry.DefaultLogFormat, "log lines as `json` or text")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if *config == "" || fs.NArg() > 0 {
		return e.usageErr(fs, "--config is required")
	}
	log, err := telemetry.NewLogger(e.stderr, *logFormat, slog.LevelInfo)
	if err != nil {
		return e.usageErr(fs, "--log-format: want json or text")
	}
	if err := run(ctx, *config, log); err != nil {
		fmt.Fprintf(e.stderr, "frostmint %s: %v\n", name, err)
		return exitRejected
	}
	return exitOK
}

func (e env) devUp(ctx context.Context, args []string) int {
	fs := e.flags("dev up", "dev up --dir DIR [--signers N --threshold T]")
	dir := fs.String("dir", "", "cluster `directory` (created if missing; reused if prepared)")
	n := fs.Int("signers", 3, "number of signers")
	t := fs.Int("threshold", 2, "signatures needed")
	var oidc oidcFlags
	fs.Var(&oidc, "trust-oidc", "trust an OIDC issuer: `name=N,issuer=URL,audience=AUD[,jwks=FILE|URL]` (repeatable; first run of a directory only)")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if *dir == "" || fs.NArg() > 0 {
		return e.usageErr(fs, "--dir is required")
	}
	err := devcluster.Up(ctx, devcluster.Options{Dir: *dir, Signers: *n, Threshold: *t, Log: e.logger(), OIDC: oidc,
		Ready: func(c *devcluster.Cluster) {
			fmt.Fprintf(e.stdout, "frostmint dev cluster ready: %d-of-%d, coordinator %s, issuer %s\ncluster file: %s\n",
				c.Threshold, len(c.Signers), c.Coordinator, c.Issuer, filepath.Join(c.Dir, "cluster.json"))
		}})
	if err != nil {
		fmt.Fprintf(e.stderr, "frostmint dev up: %v\n", err)
		return exitRejected
	}
	return exitOK
}

func (e env) devSigner(ctx context.Context, args []string) int {
	fs := e.flags("dev signer", "dev signer --dir DIR --id N")
	dir := fs.String("dir", "", "cluster `directory` made by dev up")
	id := fs.Uint("id", 0, "signer id (1..n)")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if *dir == "" || *id == 0 || *id > 16 || fs.NArg() > 0 {
		return e.usageErr(fs, "--dir and --id are required")
	}
	if err := devcluster.RunSigner(ctx, *dir, uint16(*id), e.logger()); err != nil {
		fmt.Fprintf(e.stderr, "frostmint dev signer: %v\n", err)
		return exitRejected
	}
	return exitOK
}

func (e env) mint(ctx context.Context, args []string) int {
	fs := e.flags("mint", `mint --cluster DIR/cluster.json --audience AUD --scope "a b" [--ttl 5m]`)
	cluster := fs.String("cluster", "", "cluster.json of a dev cluster (gives the coordinator address and the caller certificate)")
	coord := fs.String("coordinator", "", "coordinator `host:port` (instead of --cluster)")
	cert := fs.String("cert", "", "caller certificate `file` (instead of --cluster)")
	key := fs.String("key", "", "caller key `file` (instead of --cluster)")
	ca := fs.String("ca", "", "CA bundle `file` that the coordinator chains to (instead of --cluster)")
	aud := fs.String("audience", "", "the token's audience (required)")
	scope := fs.String("scope", "", "space-separated scopes (required)")
	ttl := fs.Duration("ttl", 0, "token lifetime (default: the coordinator's, 5m; at most 15m)")
	oidcToken := fs.String("oidc-token", "", "use an OIDC ID token from `FILE` (- for stdin) as evidence instead of the certificate")
	bindMethod := fs.String("bind-method", "", "bind the token to one request: its `METHOD` (with --bind-url)")
	bindURL := fs.String("bind-url", "", "bind the token to one request: its `URL` (scheme, authority and path; the query is not bound)")
	bindBody := fs.String("bind-body", "", "bind the token to one request: its body, read from `FILE` (- for stdin)")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up after this long (a scope that needs a human approval waits for the guardian's engineer)")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return e.usageErr(fs, "unexpected arguments")
	}
	if *aud == "" || strings.TrimSpace(*scope) == "" {
		return e.usageErr(fs, "--audience and --scope are required")
	}
	addr, files := *coord, mtls.Files{Cert: *cert, Key: *key, CA: *ca}
	if *cluster != "" {
		c, err := devcluster.ReadCluster(*cluster)
		if err != nil {
			fmt.Fprintf(e.stderr, "frostmint mint: %v\n", err)
			return exitRejected
		}
		addr, files = c.Coordinator, c.Caller
	}
	var opts []client.Option
	if *bindMethod != "" || *bindURL != "" || *bindBody != "" {
		b, err := e.requestBinding(*bindMethod, *bindURL, *bindBody)
		if err != nil {
			return e.usageErr(fs, err.Error())
		}
		opts = append(opts, client.WithBinding(b))
	}
	var cl *client.Client
	var idToken string
	var err error
	if *oidcToken != "" {
		if addr == "" {
			return e.usageErr(fs, "give --cluster, or --coordinator (and --ca)")
		}
		idToken, err = e.readSecretArg(*oidcToken)
		if err != nil {
			fmt.Fprintf(e.stderr, "frostmint mint: reading the OIDC token: %v\n", err)
			return exitUsage
		}
		cl, err = client.DialOIDC(addr, files.CA)
	} else {
		if addr == "" || files.Cert == "" || files.Key == "" || files.CA == "" {
			return e.usageErr(fs, "give --cluster, or --coordinator with --cert, --key and --ca (or --oidc-token)")
		}
		cl, err = client.Dial(addr, files)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "frostmint mint: %v\n", err)
		return exitRejected
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var resp *mintv1.MintResponse
	if idToken != "" {
		resp, err = cl.MintOIDC(ctx, idToken, *aud, strings.Fields(*scope), *ttl, opts...)
	} else {
		resp, err = cl.Mint(ctx, *aud, strings.Fields(*scope), *ttl, opts...)
	}
	if err != nil {
		st, _ := status.FromError(err)
		fmt.Fprintf(e.stderr, "error: %s: %s\n", snake(st.Code().String()), st.Message())
		return exitRejected
	}
	fmt.Fprintln(e.stdout, resp.GetToken())
	return exitOK
}

func (e env) verify(ctx context.Context, args []string) int {
	fs := e.flags("verify", "verify --jwks FILE|URL --issuer ISS --audience AUD [--scope S] [TOKEN|-]")
	src := fs.String("jwks", "", "JWKS `file or URL` (required)")
	iss := fs.String("issuer", "", "trusted issuer (required)")
	aud := fs.String("audience", "", "required audience (required)")
	scope := fs.String("scope", "", "space-separated scopes the token must grant")
	leeway := fs.Duration("leeway", 30*time.Second, "clock leeway for exp/nbf/iat (at most 5m)")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if *src == "" || *iss == "" || *aud == "" {
		return e.usageErr(fs, "--jwks, --issuer and --audience are required")
	}
	if fs.NArg() > 1 {
		return e.usageErr(fs, "at most one token argument")
	}
	var tok string
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		tok = fs.Arg(0)
	} else {
		b, err := io.ReadAll(io.LimitReader(e.stdin, 64<<10))
		if err != nil {
			fmt.Fprintf(e.stderr, "frostmint verify: reading token: %v\n", err)
			return exitUsage
		}
		tok = strings.TrimSpace(string(b))
	}
	keys, err := jwks.Load(ctx, *src, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintf(e.stderr, "error: jwks_unavailable: %v\n", err)
		return exitRejected
	}
	v, err := verifier.New(verifier.Config{
		Issuers:  []verifier.Issuer{{Issuer: *iss, Keys: keys}},
		Audience: *aud,
		Leeway:   *leeway,
	})
	if err != nil {
		return e.usageErr(fs, err.Error())
	}
	claims, err := v.Verify(ctx, tok, strings.Fields(*scope)...)
	if err != nil {
		var ve *verifier.Error
		if errors.As(err, &ve) {
			fmt.Fprintf(e.stderr, "error: %s: %s\n", ve.Code, ve.Reason)
		} else {
			fmt.Fprintf(e.stderr, "error: internal: %v\n", err)
		}
		return exitRejected
	}
	out, _ := json.MarshalIndent(claims, "", "  ")
	fmt.Fprintln(e.stdout, string(out))
	return exitOK
}

func (e env) demo(ctx context.Context, args []string) int {
	fs := e.flags("demo", "demo [--dir DIR]")
	dir := fs.String("dir", "", "cluster directory (default: a fresh temporary one, removed afterwards)")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return e.usageErr(fs, "unexpected arguments")
	}
	if err := devcluster.Demo(ctx, *dir, e.stdout, e.stderr); err != nil {
		fmt.Fprintf(e.stderr, "frostmint demo: %v\n", err)
		return exitRejected
	}
	return exitOK
}

// snake turns a gRPC code name (PermissionDenied) into permission_denied.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// readSecretArg reads a file, or stdin for "-", trimming whitespace.
func (e env) readSecretArg(src string) (string, error) {
	var b []byte
	var err error
	if src == "-" {
		b, err = io.ReadAll(io.LimitReader(e.stdin, 64<<10))
	} else {
		b, err = os.ReadFile(src)
	}
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", errors.New("empty")
	}
	return t, nil
}

// oidcFlags collects --trust-oidc values.
type oidcFlags []evidence.OIDCIssuer

func (f *oidcFlags) String() string { return fmt.Sprint(len(*f), " issuers") }

func (f *oidcFlags) Set(v string) error {
	var iss evidence.OIDCIssuer
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q is not key=value", kv)
		}
		switch k {
		case "name":
			iss.Name = val
		case "issuer":
			iss.Issuer = val
		case "audience":
			iss.Audience = val
		case "jwks":
			iss.JWKS = val
		default:
			return fmt.Errorf("unknown key %q (name, issuer, audience, jwks)", k)
		}
	}
	if iss.Name == "" || iss.Issuer == "" || iss.Audience == "" {
		return errors.New("name, issuer and audience are required")
	}
	*f = append(*f, iss)
	return nil
}

func (e env) auditVerify(args []string) int {
	fs := e.flags("audit verify", "audit verify FILE...")
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return e.usageErr(fs, "at least one log file is required")
	}
	code := exitOK
	for _, f := range fs.Args() {
		n, err := audit.Verify(f)
		if err != nil {
			fmt.Fprintf(e.stderr, "error: %v\n", err)
			code = exitRejected
			continue
		}
		fmt.Fprintf(e.stdout, "%s: %d records, chain intact\n", f, n)
	}
	return code
}

func (e env) auditDiff(args []string) int {
	fs := e.flags("audit diff", "audit diff --cluster DIR/cluster.json | --coordinator FILE --signer ID=FILE...")
	cluster := fs.String("cluster", "", "cluster.json of a dev cluster (names every log)")
	coord := fs.String("coordinator", "", "the coordinator's audit log `file`")
	signers := map[uint16]string{}
	fs.Func("signer", "a signer's audit log as `ID=FILE` (repeatable)", func(v string) error {
		id, f, ok := strings.Cut(v, "=")
		var n uint16
		if _, err := fmt.Sscan(id, &n); !ok || err != nil || n == 0 || f == "" {
			return errors.New("want ID=FILE")
		}
		signers[n] = f
		return nil
	})
	if code, ok := e.parse(fs, args); !ok {
		return code
	}
	if *cluster != "" {
		c, err := devcluster.ReadCluster(*cluster)
		if err != nil {
			fmt.Fprintf(e.stderr, "frostmint audit diff: %v\n", err)
			return exitRejected
		}
		if len(c.AuditLogs) > 0 {
			*coord = c.AuditLogs[0]
		}
		for _, s := range c.Signers {
			signers[s.ID] = s.AuditLog
		}
	}
	if *coord == "" || len(signers) == 0 || fs.NArg() > 0 {
		return e.usageErr(fs, "give --cluster, or --coordinator and at least one --signer")
	}
	d, err := audit.Diff(*coord, signers)
	if err != nil {
		fmt.Fprintf(e.stderr, "error: %v\n", err)
		return exitRejected
	}
	if d.Empty() {
		fmt.Fprintln(e.stdout, "no differences: every token the coordinator recorded was signed by the signers it names, and no signer signed anything else")
		return exitOK
	}
	for _, id := range sortedIDs(d.MissingAtSigner) {
		for _, j := range d.MissingAtSigner[id] {
			fmt.Fprintf(e.stdout, "coordinator claims signer %d signed jti %s; signer %d's log has no such allow\n", id, j, id)
		}
	}
	for _, id := range sortedIDs(d.UnknownToCoordinator) {
		for _, j := range d.UnknownToCoordinator[id] {
			fmt.Fprintf(e.stdout, "signer %d signed jti %s, which the coordinator never recorded as minted\n", id, j)
		}
	}
	return exitRejected
}

func sortedIDs(m map[uint16][]string) []uint16 {
	ids := make([]uint16, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// requestBinding builds a request binding from the mint flags.
func (e env) requestBinding(method, rawURL, bodySrc string) (binding.Binding, error) {
	if method == "" || rawURL == "" {
		return binding.Binding{}, errors.New("--bind-method and --bind-url go together")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return binding.Binding{}, fmt.Errorf("--bind-url %q is not an http(s) URL", rawURL)
	}
	var body []byte
	if bodySrc != "" {
		if bodySrc == "-" {
			body, err = io.ReadAll(e.stdin)
		} else {
			body, err = os.ReadFile(bodySrc)
		}
		if err != nil {
			return binding.Binding{}, fmt.Errorf("--bind-body: %w", err)
		}
	}
	return binding.New(strings.ToUpper(method), u.Host, u.Scheme, u.EscapedPath(), body, bodySrc != "")
}
