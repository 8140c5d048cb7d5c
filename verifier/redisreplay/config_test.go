package redisreplay_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/frostmint/frostmint/verifier/redisreplay"
)

func TestConfigValidate(t *testing.T) {
	ok := redisreplay.Config{Addr: "127.0.0.1:6379"}
	for _, tc := range []struct {
		name   string
		mutate func(*redisreplay.Config)
		// problems is the number of errors joined, 0 for a valid config.
		problems int
	}{
		{"minimal", func(*redisreplay.Config) {}, 0},
		{"everything", func(c *redisreplay.Config) {
			*c = redisreplay.Config{
				Addr: "redis.internal:6380", Username: "gw", Password: "pw", DB: 15,
				KeyPrefix: strings.Repeat("p", redisreplay.MaxKeyPrefix), DialTimeout: time.Second,
				ReadTimeout: redisreplay.MaxTimeout, WriteTimeout: time.Millisecond,
				TLS: &tls.Config{RootCAs: x509.NewCertPool()}, Now: time.Now,
			}
		}, 0},
		{"IPv6", func(c *redisreplay.Config) { c.Addr = "[::1]:6379" }, 0},
		{"TLS skip verify with own verification", func(c *redisreplay.Config) {
			c.TLS = &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(tls.ConnectionState) error { return nil }}
		}, 0},
		{"no address", func(c *redisreplay.Config) { c.Addr = "" }, 1},
		{"no port", func(c *redisreplay.Config) { c.Addr = "redis.internal" }, 1},
		{"no host", func(c *redisreplay.Config) { c.Addr = ":6379" }, 1},
		{"port 0", func(c *redisreplay.Config) { c.Addr = "localhost:0" }, 1},
		{"port too large", func(c *redisreplay.Config) { c.Addr = "localhost:65536" }, 1},
		{"named port", func(c *redisreplay.Config) { c.Addr = "localhost:redis" }, 1},
		{"URL", func(c *redisreplay.Config) { c.Addr = "redis://localhost:6379" }, 1},
		{"negative DB", func(c *redisreplay.Config) { c.DB = -1 }, 1},
		{"long prefix", func(c *redisreplay.Config) { c.KeyPrefix = strings.Repeat("p", redisreplay.MaxKeyPrefix+1) }, 1},
		{"negative dial timeout", func(c *redisreplay.Config) { c.DialTimeout = -1 }, 1},
		{"long read timeout", func(c *redisreplay.Config) { c.ReadTimeout = redisreplay.MaxTimeout + 1 }, 1},
		{"negative write timeout", func(c *redisreplay.Config) { c.WriteTimeout = -time.Second }, 1},
		{"TLS skip verify", func(c *redisreplay.Config) { c.TLS = &tls.Config{InsecureSkipVerify: true} }, 1},
		{"username without password", func(c *redisreplay.Config) { c.Username = "gw" }, 1},
		{"all wrong at once", func(c *redisreplay.Config) {
			*c = redisreplay.Config{Addr: "x", DB: -2, DialTimeout: -1, ReadTimeout: -1, WriteTimeout: time.Hour}
		}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mutate(&cfg)
			err := cfg.Validate()
			_, newErr := redisreplay.New(cfg)
			if tc.problems == 0 {
				if err != nil || newErr != nil {
					t.Fatalf("Validate = %v, New = %v; want nil", err, newErr)
				}
				return
			}
			if !errors.Is(err, redisreplay.ErrInvalid) || !errors.Is(newErr, redisreplay.ErrInvalid) {
				t.Fatalf("Validate = %v, New = %v; want ErrInvalid", err, newErr)
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("Validate = %v: not joined", err)
			}
			errs := joined.Unwrap()
			if len(errs) != tc.problems {
				t.Fatalf("Validate = %v: %d problems, want %d", err, len(errs), tc.problems)
			}
			for _, e := range errs {
				if !errors.Is(e, redisreplay.ErrInvalid) {
					t.Fatalf("problem %v does not wrap ErrInvalid", e)
				}
			}
		})
	}
}

// The password appears in no rendering of a Config, nor in its errors.
func TestConfigHidesPassword(t *testing.T) {
	const secret = "s3cret-Pa55word"
	cfg := redisreplay.Config{Addr: "bad address", Password: secret, Username: "gw"}
	var log strings.Builder
	slog.New(slog.NewJSONHandler(&log, nil)).Info("config", "redis", cfg)
	slog.New(slog.NewTextHandler(&log, nil)).Info("config", "redis", cfg, "ptr", &cfg)
	for _, s := range []string{
		cfg.String(),
		fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg),
		fmt.Sprintf("%v %+v %#v", &cfg, &cfg, &cfg),
		cfg.Validate().Error(),
		log.String(),
	} {
		if strings.Contains(s, secret) {
			t.Fatalf("password in %q", s)
		}
	}
	if !strings.Contains(cfg.String(), "password set") {
		t.Fatalf("String = %q: does not say a password is set", cfg.String())
	}
}
