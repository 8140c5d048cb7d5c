package middleware_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/frostmint/frostmint/verifier/middleware"
)

// TestChi: Require is a chi middleware, inline (With) and for a group
// (Use), and chi's routing context survives it.
func TestChi(t *testing.T) {
	m := newMiddleware(t, middleware.Options{})
	var calls atomic.Int64
	r := chi.NewRouter()
	r.With(m.Require(middleware.Route{Scopes: []string{"read"}})).Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		id, ok := middleware.FromContext(r.Context())
		if !ok {
			http.Error(w, "no identity", http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"item": chi.URLParam(r, "id"), "sub": id.Subject, "route": id.Route})
	})
	r.Group(func(r chi.Router) {
		r.Use(m.Require(middleware.Route{Name: "admin", Scopes: []string{"admin"}}))
		r.Get("/admin", func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	get := func(path string, h http.Header) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+path, nil)
		if h != nil {
			req.Header = h
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}

	resp, body := get("/items/42", bearer(good(t)))
	var got map[string]string
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// chi sets the route pattern before inline middlewares run.
	if got["item"] != "42" || got["sub"] != "alice" || got["route"] != "/items/{id}" {
		t.Errorf("handler saw %v", got)
	}

	resp, body = get("/items/42", nil)
	checkRejection(t, resp, body, 401, "missing_token")
	resp, body = get("/admin", bearer(good(t)))
	checkRejection(t, resp, body, 403, "insufficient_scope")
	if resp.Header.Get("WWW-Authenticate") != `Bearer realm="frostmint", error="insufficient_scope", scope="admin"` {
		t.Errorf("WWW-Authenticate %s", resp.Header.Get("WWW-Authenticate"))
	}
	if calls.Load() != 1 {
		t.Errorf("handlers called %d times", calls.Load())
	}
}
