package redisreplay

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/frostmint/frostmint/verifier"
)

var (
	// ErrUnavailable means Redis could not tell whether a token was seen:
	// it could not be reached in time, refused the command, or answered
	// something unexpected. The verifier refuses the token. Errors wrapping
	// it also wrap the underlying error (a net.Error, a go-redis error, the
	// context's error), for errors.Is and errors.As.
	ErrUnavailable = errors.New("redisreplay: replay store unavailable")
	// ErrInvalid means an argument is not usable: a [Config], or an expiry
	// that is not in the future.
	ErrInvalid = errors.New("redisreplay: invalid argument")
)

// Defaults of [Config].
const (
	DefaultKeyPrefix    = "frostmint:replay:"
	DefaultDialTimeout  = 500 * time.Millisecond
	DefaultReadTimeout  = 250 * time.Millisecond
	DefaultWriteTimeout = 250 * time.Millisecond
)

const (
	// MaxTimeout bounds each of the timeouts of a [Config]: a replay store
	// that takes longer is better taken as down.
	MaxTimeout = 10 * time.Second
	// MaxKeyPrefix bounds the length of [Config.KeyPrefix].
	MaxKeyPrefix = 256
	// MaxTTL bounds how far in the future an expiry may be. Verifier
	// tokens live minutes; an expiry this far ahead is a bug.
	MaxTTL = 24 * time.Hour
)

// Config configures a [Cache].
type Config struct {
	// Addr is the Redis server's host:port. Required.
	Addr string
	// Username is the Redis ACL user, if any. It needs only the commands
	// SET, PING and, if DB is set, SELECT, on keys of KeyPrefix: for the
	// default prefix, "+set +ping +select ~frostmint:replay:*".
	Username string
	// Password authenticates to Redis, if set. Read it from the
	// environment or a file; it is never logged, nor printed by
	// [Config.String].
	Password string
	// DB is the Redis database number, 0 or more.
	DB int
	// KeyPrefix is the prefix of every key the cache writes. Empty means
	// [DefaultKeyPrefix]. Verifiers that share a server, database and
	// prefix share their replay state: a token one accepted is a replay
	// to all.
	KeyPrefix string
	// DialTimeout bounds establishing a connection (TCP, TLS). Zero means
	// [DefaultDialTimeout].
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for each reply. Zero means
	// [DefaultReadTimeout].
	ReadTimeout time.Duration
	// WriteTimeout bounds sending each command. Zero means
	// [DefaultWriteTimeout].
	WriteTimeout time.Duration
	// TLS, if set, makes connections use TLS with this configuration (at
	// least TLS 1.2). An empty ServerName is taken from Addr.
	TLS *tls.Config
	// Now is the clock the time left until an expiry is measured on. Nil
	// means time.Now. Use the verifier's clock.
	Now func() time.Time
}

// Validate reports every problem of c at once, as an errors.Join of errors
// that each wrap [ErrInvalid]; nil if c is usable. Zero values that have a
// default are usable.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if c.Addr == "" {
		bad("no address")
	} else if host, port, err := net.SplitHostPort(c.Addr); err != nil {
		bad("address %q: %v", c.Addr, err)
	} else {
		if host == "" {
			bad("address %q: no host", c.Addr)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			bad("address %q: port %q not in [1, 65535]", c.Addr, port)
		}
	}
	if c.DB < 0 {
		bad("database %d is negative", c.DB)
	}
	if len(c.KeyPrefix) > MaxKeyPrefix {
		bad("key prefix of %d bytes, more than %d", len(c.KeyPrefix), MaxKeyPrefix)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dial", c.DialTimeout}, {"read", c.ReadTimeout}, {"write", c.WriteTimeout}} {
		if d.v < 0 || d.v > MaxTimeout {
			bad("%s timeout %s not in [0, %s]", d.name, d.v, MaxTimeout)
		}
	}
	if c.TLS != nil && c.TLS.InsecureSkipVerify && c.TLS.VerifyPeerCertificate == nil && c.TLS.VerifyConnection == nil {
		bad("TLS: InsecureSkipVerify without VerifyPeerCertificate or VerifyConnection")
	}
	if c.Password == "" && c.Username != "" {
		bad("username %q without a password", c.Username)
	}
	return errors.Join(errs...)
}

// String describes c for logs, without its password.
func (c Config) String() string {
	pw := "none"
	if c.Password != "" {
		pw = "set"
	}
	return fmt.Sprintf("redis://%s/%d (user %q, password %s, prefix %q, tls %t, timeouts dial %s read %s write %s)",
		c.Addr, c.DB, c.Username, pw, c.KeyPrefix, c.TLS != nil, c.DialTimeout, c.ReadTimeout, c.WriteTimeout)
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// LogValue is String, so that log/slog does not log the password either.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Cache is a [verifier.ReplayCache] in Redis. It is safe for concurrent
// use.
type Cache struct {
	rdb    *redis.Client
	prefix string
	now    func() time.Time

	closeOnce sync.Once
	closeErr  error
}

var _ verifier.ReplayCache = (*Cache)(nil)

// New returns a Cache for cfg, with defaults filled in. It does not connect:
// Redis need not be up, and each call connects as needed. It fails, with
// the error of [Config.Validate], if cfg is not usable.
func New(cfg Config) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var tlsConfig *tls.Config
	if cfg.TLS != nil {
		tlsConfig = cfg.TLS.Clone()
		tlsConfig.MinVersion = max(tlsConfig.MinVersion, tls.VersionTLS12)
	}
	rdb := redis.NewClient(&redis.Options{
		Addr:      cfg.Addr,
		Username:  cfg.Username,
		Password:  cfg.Password,
		DB:        cfg.DB,
		TLSConfig: tlsConfig,
		// RESP2: all Seen needs, understood by every Redis, no push
		// notifications to process.
		Protocol:        2,
		DisableIdentity: true, // no CLIENT SETINFO round trip per connection
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout,
		// One dial attempt and no command retry: a failure is reported at
		// once, and the verifier refuses (see the package doc).
		DialerRetries: 1,
		MaxRetries:    -1,
		// Waiting for a free connection is bounded like the rest.
		PoolTimeout: cfg.DialTimeout + cfg.WriteTimeout + cfg.ReadTimeout,
		// The caller's deadline and cancellation bound the socket I/O too.
		ContextTimeoutEnabled: true,
	})
	return &Cache{rdb: rdb, prefix: cfg.KeyPrefix, now: cfg.Now}, nil
}

// Seen implements [verifier.ReplayCache]: it records key until expiry and
// reports whether it was already recorded, in one atomic Redis command.
//
// It fails, with an error wrapping [ErrInvalid] and recording nothing, if
// expiry is not after the clock's current time or is more than [MaxTTL]
// after it. It fails, with an error wrapping [ErrUnavailable] and the
// cause, if Redis does not give a definite answer before the timeouts or
// ctx's deadline or cancellation: the key may then be recorded or not, and
// the caller must refuse the token. Only Redis's OK makes it report a
// first sighting (false and no error).
//
// A call that gets no answer ends within about the dial, write and read
// timeouts (more if it must wait for a pooled connection, at most their sum
// again), or at ctx's deadline if that is sooner.
func (c *Cache) Seen(ctx context.Context, key string, expiry time.Time) (bool, error) {
	ttl := expiry.Sub(c.now())
	if ttl <= 0 {
		return false, fmt.Errorf("%w: expiry %s is not in the future", ErrInvalid, expiry.UTC().Format(time.RFC3339Nano))
	}
	if ttl > MaxTTL {
		return false, fmt.Errorf("%w: expiry %s is more than %s away", ErrInvalid, expiry.UTC().Format(time.RFC3339Nano), MaxTTL)
	}
	// Round up: an entry may outlive its expiry by under a millisecond,
	// never die before it.
	ms := int64((ttl + time.Millisecond - 1) / time.Millisecond)

	reply, err := c.rdb.Do(ctx, "set", c.redisKey(key), "1", "px", ms, "nx").Result()
	switch {
	case errors.Is(err, redis.Nil):
		return true, nil // NX: the key exists
	case err != nil:
		return false, unavailable(ctx, "SET NX", err)
	}
	if s, ok := reply.(string); !ok || s != "OK" {
		return false, fmt.Errorf("%w: SET NX: unexpected reply %s", ErrUnavailable, describe(reply))
	}
	return false, nil
}

// redisKey is the Redis key of key: the prefix and the hex SHA-256 of key,
// so that Redis holds no token id, and keys have one length.
func (c *Cache) redisKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return c.prefix + hex.EncodeToString(sum[:])
}

// Ping checks that Redis answers, for readiness probes. It fails, with an
// error wrapping [ErrUnavailable] and the cause, as [Cache.Seen] does.
// That Ping succeeds does not mean Redis keeps its data across restarts
// (see the package doc).
func (c *Cache) Ping(ctx context.Context) error {
	reply, err := c.rdb.Ping(ctx).Result()
	if err != nil {
		return unavailable(ctx, "PING", err)
	}
	if reply != "PONG" {
		return fmt.Errorf("%w: PING: unexpected reply %s", ErrUnavailable, describe(reply))
	}
	return nil
}

// Close closes the connections to Redis. Calls of Seen and Ping after it
// fail with [ErrUnavailable]; calls of Close after the first do nothing and
// return the first's result. It fails if closing a connection fails.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		if err := c.rdb.Close(); err != nil {
			c.closeErr = fmt.Errorf("redisreplay: close: %w", err)
		}
	})
	return c.closeErr
}

// unavailable wraps err in ErrUnavailable, with ctx's error if ctx is
// done: the socket deadline, set to ctx's, may have fired first, and even
// before ctx noticed its deadline.
func unavailable(ctx context.Context, op string, err error) error {
	ctxErr := ctx.Err()
	if deadline, ok := ctx.Deadline(); ok && ctxErr == nil && !time.Now().Before(deadline) {
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w: %s: %w (%w)", ErrUnavailable, op, err, ctxErr)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// describe renders an unexpected reply for an error, clipped.
func describe(reply any) string {
	s := fmt.Sprintf("%T %q", reply, fmt.Sprint(reply))
	const max = 80
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
