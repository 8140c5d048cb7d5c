package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/coordinator/devcluster"
	"github.com/frostmint/frostmint/policy/limit"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/signer/devkeygen"
	"github.com/frostmint/frostmint/signer/keydir"
	"github.com/frostmint/frostmint/signer/keystore"
	"github.com/frostmint/frostmint/verifier/mtls"
)

// Identities of a bench cluster: the dev cluster's, so that the embedded
// default policy admits the caller (it grants the dev CLI "read" and
// "write").
const (
	coordinatorID = devcluster.CoordinatorID
	callerID      = devcluster.CallerID
)

// Issuer is the iss of the tokens a bench cluster mints.
const Issuer = "https://bench.frostmint.invalid"

// unlimited is a rate far above anything one machine mints: the limiters
// run on every mint, as in production, but never refuse one, so that the
// bench measures minting rather than the limits' configuration.
var unlimited = limit.Rate{PerSecond: 1e9, Burst: 1 << 30}

// layout is a prepared cluster directory: certificates, sealed shares
// from a real DKG, and the daemons' configs (also written as JSON files,
// for daemons run as processes).
type layout struct {
	caller      mtls.Files
	coordinator coordinator.Config
	signers     []signer.Config
	// coordFile and signerFiles are the configs' paths.
	coordFile   string
	signerFiles []string
	// lis are the listeners reserved for the daemons: the coordinator's,
	// then the signers' in order. In-process daemons serve on them; for
	// processes they are closed just before each start.
	lis []net.Listener
}

// closeListeners releases the ports still reserved.
func (l *layout) closeListeners() {
	for _, lis := range l.lis {
		if lis != nil {
			lis.Close()
		}
	}
}

// prepare makes a t-of-n cluster under o.Dir: a fresh CA, certificates for
// the coordinator, each signer and the caller, a distributed key
// generation among n goroutines (no dealer), each share sealed by the file
// keystore, and the daemons' configs with default settings except for the
// limiters (see unlimited) and the audit logs' directory.
func prepare(ctx context.Context, o Options) (_ *layout, err error) {
	certs, keys := filepath.Join(o.Dir, "certs"), filepath.Join(o.Dir, "keys")
	for _, d := range []string{certs, keys, o.AuditDir, filepath.Join(o.Dir, "logs"), filepath.Join(o.Dir, "dkg")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
	}
	l := &layout{}
	defer func() {
		if err != nil {
			l.closeListeners()
		}
	}()
	for range o.Signers + 1 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		l.lis = append(l.lis, lis)
	}
	ca, err := mtls.NewDevCA("frostmint bench CA", 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("loadgen: CA: %w", err)
	}
	leaf := func(id string) mtls.Leaf {
		return mtls.Leaf{ID: id, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Lifetime: 24 * time.Hour}
	}
	coordFiles, err := ca.Issue(certs, "coordinator", leaf(coordinatorID))
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	callerLeaf := leaf(callerID)
	callerLeaf.Ed25519 = o.CallerKey == CallerEd25519
	if l.caller, err = ca.Issue(certs, "caller", callerLeaf); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	callers := signer.Callers{TrustBundle: l.caller.CA}

	for i := 1; i <= o.Signers; i++ {
		id := uint16(i)
		sc := signer.Default()
		sc.ID = id
		sc.Listen = l.lis[i].Addr().String()
		sc.Coordinators = []string{coordinatorID}
		sc.Issuer = Issuer
		sc.KeysDir = filepath.Join(keys, fmt.Sprintf("signer-%d", id))
		pass := filepath.Join(o.Dir, fmt.Sprintf("signer-%d.pass", id))
		if err := os.WriteFile(pass, []byte(fmt.Sprintf("bench-passphrase-%d", id)), 0o600); err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		// The file keystore is the dev one: the bench cluster is a
		// throw-away on loopback, and unsealing happens once at start.
		sc.Keystore = "file:?passphrase=file:" + pass
		sc.Dev = true
		sc.Callers = callers
		sc.Limits = limit.Config{PerIdentity: unlimited}
		sc.AuditLog = filepath.Join(o.AuditDir, fmt.Sprintf("signer-%d.ndjson", id))
		if sc.TLS, err = ca.Issue(certs, fmt.Sprintf("signer-%d", id), leaf(devcluster.SignerID(id))); err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		l.signers = append(l.signers, sc)
	}
	if err := dkg(ctx, filepath.Join(o.Dir, "dkg"), l.signers, o.Threshold); err != nil {
		return nil, err
	}

	cc := coordinator.Default()
	cc.Listen = l.lis[0].Addr().String()
	cc.Issuer = Issuer
	cc.TLS = coordFiles
	cc.KeysDir = filepath.Join(keys, "coordinator")
	g, err := keydir.ReadGroup(l.signers[0].KeysDir, onlyKid(l.signers[0].KeysDir))
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	if _, err := keydir.Write(cc.KeysDir, keydir.Epoch{Public: g.Public()}); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	cc.Callers = callers
	cc.Limits = limit.Config{PerIdentity: unlimited, PerScope: unlimited}
	cc.AuditLog = filepath.Join(o.AuditDir, "coordinator.ndjson")
	if o.PoolSize > 0 {
		cc.PoolSize = o.PoolSize
	}
	for _, sc := range l.signers {
		cc.Signers = append(cc.Signers, coordinator.Endpoint{ID: sc.ID, Addr: sc.Listen, Identity: devcluster.SignerID(sc.ID)})
	}
	l.coordinator = cc

	l.coordFile = filepath.Join(o.Dir, "coordinator.json")
	if err := writeJSON(l.coordFile, cc); err != nil {
		return nil, err
	}
	for _, sc := range l.signers {
		f := filepath.Join(o.Dir, fmt.Sprintf("signer-%d.json", sc.ID))
		if err := writeJSON(f, sc); err != nil {
			return nil, err
		}
		l.signerFiles = append(l.signerFiles, f)
	}
	return l, nil
}

// dkg runs the distributed key generation among the signers, each in its
// own goroutine through the directory dir, and seals each share into its
// keys dir.
func dkg(ctx context.Context, dir string, scs []signer.Config, t int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	errs := make([]error, len(scs))
	var wg sync.WaitGroup
	for i, sc := range scs {
		wg.Go(func() {
			ks, err := devkeygen.Run(ctx, dir, sc.ID, uint16(t), uint16(len(scs)))
			if err != nil {
				errs[i] = fmt.Errorf("loadgen: key generation, signer %d: %w", sc.ID, err)
				return
			}
			defer keystore.Wipe(ks.Secret)
			sealer, err := keystore.Open(sc.Keystore, keystore.Options{Dev: true})
			if err != nil {
				errs[i] = fmt.Errorf("loadgen: signer %d: %w", sc.ID, err)
				return
			}
			defer sealer.Close()
			if _, err := keydir.WriteShare(sc.KeysDir, sc.ID, sealer, ks.Secret, ks.Public, nil); err != nil {
				errs[i] = fmt.Errorf("loadgen: signer %d: %w", sc.ID, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// onlyKid returns the kid of the one key epoch in dir, or "" (which
// ReadGroup then refuses).
func onlyKid(dir string) string {
	kids, err := keydir.List(dir, true)
	if err != nil || len(kids) != 1 {
		return ""
	}
	return kids[0]
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	return nil
}
