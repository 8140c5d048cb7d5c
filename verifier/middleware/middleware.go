package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/verifier"
	"github.com/frostmint/frostmint/verifier/binding"
	"github.com/frostmint/frostmint/verifier/token"
)

// DefaultMaxBindingBody is the [Options.MaxBindingBody] of an Options that
// sets none: the most of a body a body-bound token makes the middleware
// read.
const DefaultMaxBindingBody = 1 << 20

// Daemon is the audit.Record Daemon of the middleware's records.
const Daemon = "verifier"

// ErrConfig means [Options] are not usable; every error of [New] wraps it.
var ErrConfig = errors.New("middleware: invalid options")

// Identity is the verified caller, put in the request context.
type Identity struct {
	// Subject, ClientID, Audience and TokenID are the token's sub,
	// client_id, aud and jti claims.
	Subject, ClientID, Audience, TokenID string
	// Scopes are the scopes the token grants (not only those the route
	// required).
	Scopes []string
	// Expiry is the token's exp.
	Expiry time.Time
	// Claims are all the verified claims.
	Claims *token.Claims
	// RequestID is the id of the request, as in X-Request-Id and the audit
	// record.
	RequestID string
	// Route is the route's name, as in the audit record.
	Route string
}

type identityKey struct{}

// FromContext returns the Identity the middleware put in ctx, and false if
// there is none (the request did not pass through the middleware).
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}

// Route is what one route requires.
type Route struct {
	// Name names the route in logs and audit records ("payments-api").
	// Empty means the request's ServeMux pattern (http.Request.Pattern),
	// which is empty outside a ServeMux, or the gRPC method.
	Name string
	// Audience is the aud a token must carry. Empty means the Verifier's
	// configured audience.
	Audience string
	// Scopes are the scopes a token must grant, every one. Each must be an
	// RFC 6749 scope-token (printable ASCII without space, '"' or '\').
	Scopes []string
	// Replay is SingleUse (the zero value: a token is accepted once) or
	// Reusable (it is accepted until it expires).
	Replay verifier.ReplayMode
	// RequireBinding refuses tokens that are not bound to the request
	// (claim "req"); a bound token is always checked against the request.
	RequireBinding bool
}

// validate reports a route no request could satisfy, or whose scopes would
// not fit a WWW-Authenticate challenge.
func (rt Route) validate() error {
	for _, s := range rt.Scopes {
		if !validScopeToken(s) {
			return fmt.Errorf("%w: route %q: scope %q is not an RFC 6749 scope-token", ErrConfig, rt.Name, s)
		}
	}
	return nil
}

// validScopeToken: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Auditor records decisions. [*audit.Log] is one. An Append that fails
// denies the request (503, code "audit_unavailable").
type Auditor interface {
	Append(r audit.Record) error
}

// Options configure a [Middleware].
type Options struct {
	// Verifier checks the tokens. Required.
	Verifier *verifier.Verifier
	// Audit, when set, records every allow and deny as an audit.Record of
	// Daemon "verifier" before the handler runs or the rejection is sent.
	// If it fails, the request is denied with audit_unavailable. It must
	// not be a typed nil.
	Audit Auditor
	// MaxBindingBody is the most of a body the middleware reads to check a
	// body-bound token; a longer body is refused with body_too_large. Zero
	// means [DefaultMaxBindingBody]; it may not be negative.
	MaxBindingBody int64
	// Scheme returns the scheme the client used ("http" or "https"), for
	// the default port of request binding. Nil means "https" if r.TLS is
	// set, else "http"; behind a TLS terminator, say what it terminated.
	Scheme func(*http.Request) string
	// RequestID returns the id of a request. Nil means the X-Request-Id
	// header if there is exactly one and it is a sane token (1 to 128
	// characters of [A-Za-z0-9._-]), else a fresh random id. An id that is
	// not sane is replaced by a fresh one whatever its source.
	RequestID func(*http.Request) string
	// Log, when set, receives a line per denial (Info; audit failures at
	// Error) and per allow (Debug), with the request id and the reason.
	// Tokens are never logged.
	Log *slog.Logger
	// Metrics, when set, is told every decision (see [Metrics]); package
	// prommetrics counts them for Prometheus. It must not be a typed nil.
	Metrics Metrics
}

// Middleware protects handlers. It is safe for concurrent use.
type Middleware struct {
	v         *verifier.Verifier
	audit     Auditor
	maxBody   int64
	scheme    func(*http.Request) string
	requestID func(*http.Request) string
	log       *slog.Logger
	metrics   Metrics // nil: none
}

// New returns a Middleware for o. It fails, with an error wrapping
// [ErrConfig], on a nil Verifier or a negative MaxBindingBody.
func New(o Options) (*Middleware, error) {
	if o.Verifier == nil {
		return nil, fmt.Errorf("%w: no Verifier", ErrConfig)
	}
	if o.MaxBindingBody < 0 {
		return nil, fmt.Errorf("%w: negative MaxBindingBody %d", ErrConfig, o.MaxBindingBody)
	}
	m := &Middleware{
		v:         o.Verifier,
		audit:     o.Audit,
		maxBody:   o.MaxBindingBody,
		scheme:    o.Scheme,
		requestID: o.RequestID,
		log:       o.Log,
		metrics:   o.Metrics,
	}
	if m.maxBody == 0 {
		m.maxBody = DefaultMaxBindingBody
	}
	if m.scheme == nil {
		m.scheme = defaultScheme
	}
	if m.requestID == nil {
		m.requestID = defaultRequestID
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

func defaultScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// Require returns a middleware that serves a request with next only when
// it passes the checks of rt, and otherwise answers with [WriteError]. It
// fits net/http (mux.Handle(p, m.Require(rt)(h))) and routers that take a
// func(http.Handler) http.Handler, such as chi (r.With(m.Require(rt))).
//
// Require panics, as http.ServeMux.Handle does on a bad pattern, if a scope
// of rt is not an RFC 6749 scope-token: such a route is a programming
// error that no request could satisfy.
func (m *Middleware) Require(rt Route) func(http.Handler) http.Handler {
	if err := rt.validate(); err != nil {
		panic(err)
	}
	return func(next http.Handler) http.Handler { return m.Handler(rt, next) }
}

// Handler returns next protected by rt, as [Middleware.Require] does, and
// panics as it does.
func (m *Middleware) Handler(rt Route, next http.Handler) http.Handler {
	if err := rt.validate(); err != nil {
		panic(err)
	}
	rt.Scopes = slices.Clone(rt.Scopes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid, inCtx := m.requestIDOf(r)
		w.Header().Set("X-Request-Id", rid)
		r, _, err := m.authenticate(r, rt, rid, inCtx)
		if err != nil {
			WriteError(w, r, rid, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Authenticate runs the checks of rt for r without writing a response; the
// gateway uses it. On success the returned request is r with the
// [Identity] and the request id in its context, and with its body restored
// if a body-bound token made the middleware read it. The decision is
// audited first when [Options.Audit] is set.
//
// On failure the returned request is r with the request id in its
// context, and the error is a [*verifier.Error] (for insufficient_scope
// its Err is a [*RequiredScopesError]) or wraps [ErrMissingToken] or
// [ErrAuditUnavailable]; [WriteError] turns it into the response. A route
// that [Middleware.Require] would panic on is refused with an error that
// is none of these (internal_error, 500).
//
// The request id is the one in r's context, if [Middleware.WithRequestID]
// put one there, or else a new one of [Options.RequestID]; call
// WithRequestID first to know it when Authenticate fails.
func (m *Middleware) Authenticate(r *http.Request, rt Route) (*http.Request, *Identity, error) {
	rid, inCtx := m.requestIDOf(r)
	return m.authenticate(r, rt, rid, inCtx)
}

// authenticate is Authenticate with the request id rid, already in r's
// context if inCtx.
func (m *Middleware) authenticate(r *http.Request, rt Route, rid string, inCtx bool) (*http.Request, *Identity, error) {
	name := rt.Name
	if name == "" {
		name = r.Pattern
	}
	ctx := r.Context()
	// CheckScheme restores the body on r, which the returned request copies.
	id, err := m.checkRoute(ctx, rt, r.Header.Values("Authorization"), func(want binding.Binding) error {
		return binding.CheckScheme(r, m.scheme(r), want, m.maxBody)
	})
	err = m.record(ctx, rid, name, id, err)
	if !inCtx {
		ctx = context.WithValue(ctx, requestIDKey{}, rid)
	}
	if err != nil {
		if !inCtx {
			r = r.WithContext(ctx)
		}
		return r, nil, err
	}
	return r.WithContext(context.WithValue(ctx, identityKey{}, id)), id, nil
}

// errBadRoute: a route no request can satisfy (see Route.validate).
var errBadRoute = errors.New("middleware: invalid route")

// checkRoute validates rt and checks the bearer credential of the
// Authorization values against it.
func (m *Middleware) checkRoute(ctx context.Context, rt Route, authorization []string, checkBinding func(binding.Binding) error) (*Identity, error) {
	if err := rt.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadRoute, err)
	}
	tok, err := bearerFromHeader(authorization)
	if err != nil {
		return nil, err
	}
	return m.check(ctx, tok, rt, checkBinding)
}

// check verifies tok for rt. checkBinding checks a bound token against the
// request.
func (m *Middleware) check(ctx context.Context, tok string, rt Route, checkBinding func(binding.Binding) error) (*Identity, error) {
	c, err := m.v.Check(ctx, tok, verifier.Requirements{
		Audience:       rt.Audience,
		Scopes:         rt.Scopes,
		Replay:         rt.Replay,
		RequireBinding: rt.RequireBinding,
		CheckBinding:   checkBinding,
	})
	if err != nil {
		if e, ok := errors.AsType[*verifier.Error](err); ok && e.Code == verifier.CodeInsufficientScope {
			// For the challenge's scope attribute (RFC 6750 §3).
			return nil, &verifier.Error{Code: e.Code, Reason: e.Reason, Err: &RequiredScopesError{Scopes: slices.Clone(rt.Scopes), Err: e.Err}}
		}
		return nil, err
	}
	if c == nil { // never, but a nil claims must not pass
		return nil, &verifier.Error{Code: verifier.CodeMalformed, Reason: "verifier returned no claims"}
	}
	return &Identity{
		Subject:  c.Subject,
		ClientID: c.ClientID,
		Audience: c.Audience,
		TokenID:  c.ID,
		Scopes:   c.Scopes(),
		Expiry:   c.ExpiresAt(),
		Claims:   c,
	}, nil
}

// record completes id with rid and name, logs and audits the decision
// (id, err), and returns the error the caller must act upon: err, or one
// wrapping ErrAuditUnavailable if the decision could not be recorded.
func (m *Middleware) record(ctx context.Context, rid, name string, id *Identity, err error) (final error) {
	defer func() { m.observe(name, final) }()
	code := ""
	if err == nil {
		id.RequestID, id.Route = rid, name
	} else {
		code = codeOf(err)
	}
	if m.audit != nil {
		rec := audit.Record{Daemon: Daemon, RequestID: rid, Route: name, Decision: audit.Deny, Code: code}
		if err == nil {
			c := id.Claims
			rec.Decision = audit.Allow
			rec.Subject, rec.ClientID, rec.JTI = c.Subject, c.ClientID, c.ID
			rec.Granted = &audit.Granted{Audience: c.Audience, Scope: c.Scope, Expiry: c.Expiry}
		} else if e, ok := errors.AsType[*verifier.Error](err); ok && e.Reason != "" {
			rec.Reasons = []string{e.Reason}
		}
		if aerr := m.audit.Append(rec); aerr != nil {
			m.log.LogAttrs(ctx, slog.LevelError, "request denied: audit record not written",
				slog.String("request_id", rid), slog.String("route", name), slog.String("decision", rec.Decision),
				slog.String("code", code), slog.String("sub", rec.Subject), slog.Any("err", aerr))
			return fmt.Errorf("%w: recording %s (%s): %w", ErrAuditUnavailable, rec.Decision, code, aerr)
		}
	}
	if err != nil {
		if m.log.Enabled(ctx, slog.LevelInfo) {
			m.log.LogAttrs(ctx, slog.LevelInfo, "request denied",
				slog.String("request_id", rid), slog.String("route", name), slog.String("code", code), slog.Any("err", err))
		}
		return err
	}
	if m.log.Enabled(ctx, slog.LevelDebug) {
		c := id.Claims
		m.log.LogAttrs(ctx, slog.LevelDebug, "request allowed",
			slog.String("request_id", rid), slog.String("route", name),
			slog.String("sub", c.Subject), slog.String("client_id", c.ClientID), slog.String("jti", c.ID))
	}
	return nil
}
