package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/token"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"frostmint": main})
}

// TestScripts runs the CLI scripts in testdata/script. Each script gets an
// offline issuer: $WORK/jwks.json and tokens in $VALID, $EXPIRED,
// $FUTURE, $LONG (lifetime above the cap, signed anyway) and $OTHERKEY.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
			doc, err := jwks.Marshal(pub)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(env.WorkDir, "jwks.json"), doc, 0o644); err != nil {
				return err
			}
			kid, _ := jwks.KeyID(pub)
			now := time.Now().Unix()
			mk := func(key ed25519.PrivateKey, iat, ttl int64) string {
				id, _ := token.NewID(rand.Reader)
				c := token.Claims{Issuer: "https://issuer.test", Subject: "spiffe://td/ci", ClientID: "spiffe://td/ci",
					Audience: "https://api.test", Scope: "read write", IssuedAt: iat, NotBefore: iat, Expiry: iat + ttl, ID: id}
				in, err := token.SigningInput(token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: kid}, c)
				if err != nil {
					in = mustInput(kid, c) // what the profile refuses, to test the verifier
				}
				return token.Compact(in, ed25519.Sign(key, in))
			}
			valid := mk(priv, now, 300)
			env.Setenv("VALID", valid)
			if err := os.WriteFile(filepath.Join(env.WorkDir, "valid.txt"), []byte(valid+"\n"), 0o644); err != nil {
				return err
			}
			env.Setenv("EXPIRED", mk(priv, now-1000, 300))
			env.Setenv("FUTURE", mk(priv, now+600, 300))
			env.Setenv("LONG", mk(priv, now, 3600))
			env.Setenv("OTHERKEY", mk(otherPriv, now, 300))
			return nil
		},
	})
}
