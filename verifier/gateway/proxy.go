package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/frostmint/frostmint/policy/audit"
	"github.com/frostmint/frostmint/verifier/middleware"
)

// Headers the gateway sets on every request it forwards. Any header the
// client sent whose name starts with "X-Frostmint-" (in any case, with "_"
// taken as "-") is removed first, so an upstream can trust them.
const (
	HeaderSubject  = "X-Frostmint-Subject"   // sub
	HeaderClientID = "X-Frostmint-Client-Id" // client_id
	HeaderIssuer   = "X-Frostmint-Issuer"    // iss: sub is only unique per issuer
	HeaderScope    = "X-Frostmint-Scope"     // the granted scopes, space-separated
	HeaderTokenID  = "X-Frostmint-Token-Id"  // jti
	HeaderExpiry   = "X-Frostmint-Expiry"    // exp, Unix seconds
	// HeaderRequestID is set on the forwarded request and on every
	// response: the client's value when it is sane, else a fresh one.
	HeaderRequestID = "X-Request-Id"
)

// route is a [RouteConfig] made ready to serve.
type route struct {
	name    string
	prefix  string
	methods []string // empty: any
	auth    middleware.Route
	target  *url.URL
	proxy   *httputil.ReverseProxy
}

// matches reports whether the route takes a request for method and path
// (a clean path: see cleanPath). Prefixes match whole segments.
func (rt *route) matches(method, path string) bool {
	p := rt.prefix
	if !strings.HasPrefix(path, p) {
		return false
	}
	if len(path) != len(p) && p[len(p)-1] != '/' && path[len(p)] != '/' {
		return false
	}
	if len(rt.methods) == 0 {
		return true
	}
	for _, m := range rt.methods {
		if m == method {
			return true
		}
	}
	return false
}

// match returns the route of a request, or nil. g.routes is sorted by
// decreasing prefix length, so the first match is the longest.
func (g *Gateway) match(method, path string) *route {
	for _, rt := range g.routes {
		if rt.matches(method, path) {
			return rt
		}
	}
	return nil
}

// ServeHTTP is the gateway's handler: route, authenticate, forward.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.active.Add(1)
	defer g.active.Add(-1)

	// The client's X-Request-Id when it is sane (1 to 128 characters of
	// A-Z a-z 0-9 . _ -), else a fresh one; the same in the response, the
	// forwarded request, the log and the audit record.
	r, rid := g.mw.WithRequestID(r)
	w.Header().Set(HeaderRequestID, rid)

	// A path that an upstream could read as another path (dot segments,
	// doubled or back slashes, ";" parameters) is refused rather than
	// routed: the route chosen must be the route the upstream serves.
	if !cleanPath(r.URL.Path) {
		g.refuse(w, r, rid, "", http.StatusBadRequest, "bad_path", "the request path is not in canonical form")
		return
	}
	rt := g.match(r.Method, r.URL.Path)
	if rt == nil {
		g.refuse(w, r, rid, "", http.StatusNotFound, "no_route", "no route for this request")
		return
	}
	r, id, err := g.mw.Authenticate(r, rt.auth)
	if err != nil {
		middleware.WriteError(w, r, rid, err)
		return
	}
	if !identitySafe(id) {
		g.log.Error("token identity cannot be forwarded in headers", "request_id", rid, "route", rt.name)
		g.refuse(w, r, rid, rt.name, http.StatusForbidden, "identity_not_forwardable", "the token's identity cannot be forwarded")
		return
	}
	// The proxy's Rewrite finds the identity in r's context.
	rt.proxy.ServeHTTP(w, r)
}

// refuse writes a rejection of the gateway's own (not the middleware's),
// after recording it in the audit log if there is one.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, rid, routeName string, status int, code, message string) {
	g.metrics.refused(routeName, code)
	if g.audit != nil {
		err := g.audit.Append(audit.Record{
			Daemon:    middleware.Daemon,
			RequestID: rid,
			Decision:  audit.Deny,
			Code:      code,
			Route:     routeName,
			Reasons:   []string{clipReason(r.Method + " " + r.URL.EscapedPath())},
		})
		if err != nil {
			g.log.Error("audit append failed", "request_id", rid, "err", err)
			middleware.WriteError(w, r, rid, middleware.ErrAuditUnavailable)
			return
		}
	}
	writeJSON(w, status, code, message, rid)
}

// clipReason bounds what a client sent before it goes into a record.
func clipReason(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// rewrite returns the Rewrite function of a route's proxy.
func (g *Gateway) rewrite(rt *route) func(*httputil.ProxyRequest) {
	return func(pr *httputil.ProxyRequest) {
		pr.SetURL(rt.target)
		pr.SetXForwarded()
		pr.Out.Header.Set("X-Forwarded-Proto", g.scheme(pr.In))
		h := pr.Out.Header
		delete(h, "Authorization")
		for k := range h {
			if isFrostmintHeader(k) {
				delete(h, k)
			}
		}
		id, ok := middleware.FromContext(pr.In.Context())
		if !ok || id.RequestID == "" {
			// Unreachable: ServeHTTP forwards authenticated requests
			// only. Should it happen, the request must not leave.
			pr.Out.URL = &url.URL{Scheme: "refused", Host: "unauthenticated"}
			return
		}
		h[HeaderSubject] = []string{id.Subject}
		h[HeaderClientID] = []string{id.ClientID}
		if id.Claims != nil {
			h[HeaderIssuer] = []string{id.Claims.Issuer}
		}
		h[HeaderScope] = []string{strings.Join(id.Scopes, " ")}
		h[HeaderTokenID] = []string{id.TokenID}
		h[HeaderExpiry] = []string{strconv.FormatInt(id.Expiry.Unix(), 10)}
		h[HeaderRequestID] = []string{id.RequestID}
	}
}

// modifyResponse keeps the gateway's request id the only one on the
// response.
func modifyResponse(resp *http.Response) error {
	delete(resp.Header, HeaderRequestID)
	trailersOnly(resp)
	return nil
}

// trailersOnly turns a gRPC "trailers-only" response (the status in the
// one HEADERS frame, no body: how gRPC answers most errors) into headers
// and trailers. The proxy flushes headers as soon as they are written, so
// the status would otherwise reach the client in a HEADERS frame that does
// not end the stream, followed by an empty end of stream, which gRPC
// clients refuse ("server closed the stream without sending trailers").
func trailersOnly(resp *http.Response) {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc") || resp.Header.Get("Grpc-Status") == "" {
		return
	}
	if resp.Trailer == nil {
		resp.Trailer = http.Header{}
	}
	for _, k := range []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"} {
		if v, ok := resp.Header[k]; ok {
			resp.Trailer[k] = v
			delete(resp.Header, k)
		}
	}
}

// upstreamError answers 502 when the upstream cannot be reached or fails
// before its response headers; the cause goes to the log only.
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	id := middleware.RequestIDFromContext(r.Context())
	if r.Context().Err() == nil {
		g.log.Warn("upstream request failed", "request_id", id, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, http.StatusBadGateway, "bad_gateway", "the upstream service could not be reached", id)
}

// scheme is the scheme the client used: X-Forwarded-Proto when the config
// trusts it and it is http or https, else that of the connection.
func (g *Gateway) scheme(r *http.Request) string {
	if g.cfg.TrustForwardedProto {
		if v := r.Header["X-Forwarded-Proto"]; len(v) == 1 {
			switch p := strings.ToLower(strings.TrimSpace(v[0])); p {
			case "http", "https":
				return p
			}
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// cleanPath reports whether p is a path the gateway routes: it starts
// with "/", and has no empty segment but the last ("//"), no "." or ".."
// segment, and no backslash, ";" or control character. Such paths are
// read differently by different servers (some collapse "//", resolve dot
// segments, take "\" for "/" or drop ";params"), so a prefix match on
// them says nothing about which resource the upstream serves.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' || c == ';' {
				return false
			}
			continue
		}
		seg := p[start:i]
		if (seg == "" && i < len(p)) || seg == "." || seg == ".." {
			return false
		}
		start = i + 1
	}
	return true
}

// isFrostmintHeader reports whether a header name is in the gateway's
// namespace: "X-Frostmint-" in any case, with "_" for "-" (some servers
// and CGI-style frameworks map "_" to "-").
func isFrostmintHeader(k string) bool {
	const prefix = "x-frostmint-"
	if len(k) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := k[i]
		if c == '_' {
			c = '-'
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// identitySafe reports whether every identity value can be sent as a
// header value unchanged.
func identitySafe(id *middleware.Identity) bool {
	if id == nil || !headerSafe(id.Subject) || !headerSafe(id.ClientID) || !headerSafe(id.TokenID) {
		return false
	}
	if id.Claims != nil && !headerSafe(id.Claims.Issuer) {
		return false
	}
	for _, s := range id.Scopes {
		if !headerSafe(s) {
			return false
		}
	}
	return true
}

// headerSafe reports whether s has no control character (so no CR or
// LF) and no leading or trailing space that a server would trim.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return strings.TrimSpace(s) == s
}

// errorBody is the JSON body of every rejection, as the middleware's.
type errorBody struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func writeJSON(w http.ResponseWriter, status int, code, message, requestID string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if requestID != "" {
		h.Set(HeaderRequestID, requestID)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: code, Message: message, RequestID: requestID})
}

// bufferPool is the proxies' httputil.BufferPool.
type bufferPool struct{ p sync.Pool }

const bufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, bufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == bufferSize {
		buf = buf[:bufferSize]
		b.p.Put(&buf)
	}
}
