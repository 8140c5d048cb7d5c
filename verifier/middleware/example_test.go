package middleware_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/jwks"
	"github.com/frostmint/frostmint/verifier/middleware"
	"github.com/frostmint/frostmint/verifier/token"
)

// Protect a handler in five lines: a Middleware over the Verifier, and a
// Route per handler saying what a token must grant.
func Example() {
	v, mintToken := exampleVerifier() // in production: verifier.New with the issuer's JWKS (jwks.Load)
	payments := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.FromContext(r.Context())
		fmt.Fprintf(w, "payment accepted from %s\n", id.Subject)
	})

	mw, err := middleware.New(middleware.Options{Verifier: v})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /payments", mw.Require(middleware.Route{Scopes: []string{"payments:write"}})(payments))

	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tok := range []string{mintToken("payments:write"), mintToken("payments:read"), ""} {
		req, _ := http.NewRequest("POST", srv.URL+"/payments", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		req.Header.Set("X-Request-Id", "example-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s", resp.StatusCode, body)
		if c := resp.Header.Get("WWW-Authenticate"); c != "" {
			fmt.Printf("    WWW-Authenticate: %s\n", c)
		}
	}
	// Output:
	// 200 payment accepted from alice
	// 403 {"error":"insufficient_scope","message":"The access token lacks a scope this request requires.","request_id":"example-1"}
	//     WWW-Authenticate: Bearer realm="frostmint", error="insufficient_scope", scope="payments:write"
	// 401 {"error":"missing_token","message":"A bearer token is required.","request_id":"example-1"}
	//     WWW-Authenticate: Bearer realm="frostmint"
}

// exampleVerifier returns a Verifier trusting a fresh key, and a function
// that mints a token with that key for the given scope, as frostmint would.
func exampleVerifier() (*verifier.Verifier, func(scope string) string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	keys, err := jwks.NewStatic(pub)
	if err != nil {
		log.Fatal(err)
	}
	const iss, aud = "https://frostmint.example", "https://payments.example"
	v, err := verifier.New(verifier.Config{Issuers: []verifier.Issuer{{Issuer: iss, Keys: keys}}, Audience: aud})
	if err != nil {
		log.Fatal(err)
	}
	kid, _ := jwks.KeyID(pub)
	return v, func(scope string) string {
		now := time.Now().Unix()
		jti, _ := token.NewID(rand.Reader)
		in, err := token.SigningInput(token.Header{Algorithm: token.Algorithm, Type: token.Type, KeyID: kid}, token.Claims{
			Issuer: iss, Subject: "alice", ClientID: "checkout", Audience: aud, Scope: scope,
			IssuedAt: now, NotBefore: now, Expiry: now + 300, ID: jti,
		})
		if err != nil {
			log.Fatal(err)
		}
		return token.Compact(in, ed25519.Sign(priv, in))
	}
}
