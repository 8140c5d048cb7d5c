package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := Default()
		c.Listen = "127.0.0.1:8080"
		c.Issuers = []IssuerConfig{{Issuer: "https://issuer.example", JWKS: "/etc/jwks.json"}}
		c.Audience = "https://api.example"
		c.Upstream = "http://127.0.0.1:9000"
		c.Routes = []RouteConfig{{Name: "all", PathPrefix: "/", Scopes: []string{"read"}}}
		return c
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the problems, one each; none: valid
	}{
		{"valid", func(*Config) {}, nil},
		{"discovery, URL, h2c, https", func(c *Config) {
			c.Issuers = []IssuerConfig{{Issuer: "https://a.example"}, {Issuer: "b", JWKS: "https://b.example/jwks"}}
			c.Routes = append(c.Routes,
				RouteConfig{Name: "grpc", PathPrefix: "/pkg.Svc/", Methods: []string{"POST"}, Upstream: "h2c://127.0.0.1:9001", Replay: ReplayReusable},
				RouteConfig{Name: "tls", PathPrefix: "/x", Upstream: "https://svc.internal/base", Audience: "other", RequireBinding: true})
			c.Replay.Redis = &RedisConfig{Addr: "redis:6379", PasswordFile: "/run/pw", Username: "gw"}
			c.TLS = &TLSFiles{Cert: "c.pem", Key: "k.pem"}
			c.AdminListen = "127.0.0.1:9090"
		}, nil},
		{"same prefix, disjoint methods", func(c *Config) {
			c.Routes = []RouteConfig{
				{Name: "r", PathPrefix: "/a", Methods: []string{"GET"}},
				{Name: "w", PathPrefix: "/a", Methods: []string{"POST", "PUT"}},
			}
		}, nil},
		{"empty", func(c *Config) { *c = Config{} }, []string{
			"listen is required", "at least one issuer", "max_binding_body", "shutdown_timeout", "at least one route",
		}},
		{"bad addresses", func(c *Config) { c.Listen = "8080"; c.AdminListen = "nope" }, []string{"listen:", "admin_listen:"}},
		{"admin same as listen", func(c *Config) { c.AdminListen = c.Listen }, []string{"must differ"}},
		{"tls half", func(c *Config) { c.TLS = &TLSFiles{Cert: "c.pem"} }, []string{"tls: cert and key"}},
		{"issuers", func(c *Config) {
			c.Issuers = []IssuerConfig{
				{Issuer: ""},
				{Issuer: "https://dup.example"},
				{Issuer: "https://dup.example"},
				{Issuer: "not-a-url"},
				{Issuer: "https://x.example", JWKS: "http://remote.example/jwks"},
			}
		}, []string{"issuers[0]", "duplicate issuer", "issuers[3]", "issuers[4]"}},
		{"leeway", func(c *Config) { c.Leeway = Duration(time.Hour) }, []string{"leeway"}},
		{"negative leeway", func(c *Config) { c.Leeway = Duration(-time.Second) }, []string{"leeway"}},
		{"redis", func(c *Config) { c.Replay.Redis = &RedisConfig{Addr: "no-port", DB: -1, Username: "u"} }, []string{
			"replay.redis", "database -1", `username "u" without a password`,
		}},
		{"upstreams", func(c *Config) {
			c.Upstream = "ftp://x"
			c.Routes = append(c.Routes,
				RouteConfig{Name: "u1", PathPrefix: "/1", Upstream: "http://user:pw@x"},
				RouteConfig{Name: "u2", PathPrefix: "/2", Upstream: "http://x/?q=1"},
				RouteConfig{Name: "u3", PathPrefix: "/3", Upstream: "http://"})
		}, []string{"upstream: \"ftp://x\"", "user information", "query", "no host"}},
		{"no upstream", func(c *Config) { c.Upstream = "" }, []string{"no upstream"}},
		{"no audience", func(c *Config) { c.Audience = "" }, []string{"no audience"}},
		{"body and timeout", func(c *Config) {
			c.MaxBindingBody = MaxMaxBindingBody + 1
			c.ShutdownTimeout = 0
		}, []string{"max_binding_body", "shutdown_timeout"}},
		{"routes", func(c *Config) {
			c.Routes = []RouteConfig{
				{Name: "", PathPrefix: "/a"},
				{Name: "bad name!", PathPrefix: "/b"},
				{Name: "dup", PathPrefix: "/c"},
				{Name: "dup", PathPrefix: "/d"},
				{Name: "p1", PathPrefix: "api"},
				{Name: "p2", PathPrefix: "/api/../x"},
				{Name: "p3", PathPrefix: ""},
				{Name: "m", PathPrefix: "/m", Methods: []string{"get", "POST", "POST"}},
				{Name: "s", PathPrefix: "/s", Scopes: []string{"two words", ""}},
				{Name: "r", PathPrefix: "/r", Replay: "twice"},
			}
		}, []string{
			"routes[0]: name is required", "name must be", "duplicate name", `path_prefix: "api"`, `path_prefix: "/api/../x"`,
			"path_prefix: required", `method "get"`, "POST listed twice", `scope "two words"`, `scope ""`, `replay "twice"`,
		}},
		{"ambiguous routes", func(c *Config) {
			c.Routes = []RouteConfig{
				{Name: "a", PathPrefix: "/x", Methods: []string{"GET"}},
				{Name: "b", PathPrefix: "/x", Methods: []string{"GET", "POST"}},
				{Name: "c", PathPrefix: "/y"},
				{Name: "d", PathPrefix: "/y", Methods: []string{"DELETE"}},
			}
		}, []string{`routes "a" and "b"`, `routes "c" and "d"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate: %v, want an ErrConfig", err)
			}
			problems := unjoin(err)
			if len(problems) != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%v", len(problems), len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("no problem mentions %q:\n%v", w, err)
				}
			}
			for _, p := range problems {
				if !errors.Is(p, ErrConfig) {
					t.Errorf("problem %v does not wrap ErrConfig", p)
				}
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{
		"listen": "127.0.0.1:8080",
		"issuers": [{"issuer": "https://issuer.example", "jwks": "jwks.json"}],
		"audience": "aud",
		"upstream": "h2c://127.0.0.1:9000",
		"replay": {"redis": {"addr": "127.0.0.1:6379", "key_prefix": "gw:"}},
		"shutdown_timeout": "3s",
		"routes": [{"name": "all", "path_prefix": "/", "scopes": ["read"], "replay": "reusable"}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.ShutdownTimeout) != 3*time.Second || time.Duration(c.Leeway) != 30*time.Second ||
		c.MaxBindingBody != DefaultMaxBindingBody || c.Replay.Redis.KeyPrefix != "gw:" || c.Routes[0].Replay != ReplayReusable {
		t.Fatalf("parsed %+v", c)
	}

	for _, bad := range []string{
		`{"listen": "x", "unknown": 1}`,
		`{"routes": [{"name": "a", "path_prefix": "/", "scope": ["read"]}]}`,
		`{"replay": {"redis": {"addr": "x:1", "password": "literal"}}}`,
		`{"leeway": 30}`,
		`{"leeway": "soon"}`,
		`{"listen": "x"} {"listen": "y"}`,
		`[]`,
	} {
		if _, err := ParseConfig([]byte(bad)); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseConfig(%s): %v, want an ErrConfig", bad, err)
		}
	}

	path := filepath.Join(t.TempDir(), "gw.json")
	os.WriteFile(path, []byte(`{"listen": 1}`), 0o600)
	if _, err := LoadConfig(path); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadConfig: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, ErrConfig) {
		t.Errorf("LoadConfig of a missing file: %v", err)
	}
}

func TestCleanPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/a": true, "/a/": true, "/a/b.c/d..e/.f": true, "/%": true,
		"": false, "a": false, "*": false, "//": false, "/a//b": false, "/.": false, "/..": false,
		"/a/./b": false, "/a/../b": false, "/a/..": false, "/a\\b": false, "/a;b": false, "/a\x00": false, "/a\nb": false, "/a\x7f": false,
	} {
		if got := cleanPath(p); got != want {
			t.Errorf("cleanPath(%q) = %t, want %t", p, got, want)
		}
	}
}

func TestIsFrostmintHeader(t *testing.T) {
	for k, want := range map[string]bool{
		"X-Frostmint-Subject": true, "x-frostmint-": true, "X_FROSTMINT_SCOPE": true, "x-Frostmint_x": true,
		"X-Frostmint": false, "X-Frostmintx-a": false, "Frostmint-Subject": false, "X-Forwarded-For": false,
	} {
		if got := isFrostmintHeader(k); got != want {
			t.Errorf("isFrostmintHeader(%q) = %t, want %t", k, got, want)
		}
	}
}
