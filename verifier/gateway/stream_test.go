package gateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// pattern is a deterministic, incompressible-enough byte stream.
type pattern struct{ i uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for j := range b {
		p.i++
		b[j] = byte(p.i*2654435761>>13) ^ byte(p.i)
	}
	return len(b), nil
}

// TestLargeBodyStreams: a large request body of unknown length reaches the
// upstream whole, and reaches it as it is sent, not after: the client
// sends the rest only once the upstream has seen the first mebibyte.
func TestLargeBodyStreams(t *testing.T) {
	const total, first = 64 << 20, 1 << 20
	gotFirst := make(chan struct{})
	up := newHandlerUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.CopyN(h, r.Body, first)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		close(gotFirst)
		m, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %x", n+m, h.Sum(nil))
	}))
	gw := start(t, baseConfig(t, up.URL))

	pr, pw := io.Pipe()
	want := sha256.New()
	go func() {
		src := io.TeeReader(&pattern{}, want)
		if _, err := io.CopyN(pw, src, first); err != nil {
			pw.CloseWithError(err)
			return
		}
		select {
		case <-gotFirst:
		case <-time.After(20 * time.Second):
			pw.CloseWithError(fmt.Errorf("the upstream did not see the first %d bytes while the rest was held back: the body is buffered", first))
			return
		}
		_, err := io.CopyN(pw, src, total-first)
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequest("PUT", gw.url+"/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+mint(t))
	resp, body := send(t, gw.client, req)
	checkStatus(t, resp, body, 200, "")
	if exp := fmt.Sprintf("%d %x", total, want.Sum(nil)); string(body) != exp {
		t.Fatalf("upstream saw %q, want %q", body, exp)
	}
}

// TestStreamingResponse: each event of a server-sent stream reaches the
// client when the upstream flushes it, not when the response ends.
func TestStreamingResponse(t *testing.T) {
	next := make(chan struct{})
	up := newHandlerUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	}))
	gw := start(t, baseConfig(t, up.URL))

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", gw.url+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t))
	resp, err := gw.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q %v (not flushed?)", line, err)
	}
	close(next)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest: %q %v", rest, err)
	}
}

// wsUpstream is an upstream that upgrades WebSocket requests and then
// echoes what it receives; it records the headers of the last upgrade.
type wsUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen http.Header
}

func newWSUpstream(t *testing.T) *wsUpstream {
	ws := &wsUpstream{}
	ws.Server = newHandlerUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		ws.mu.Lock()
		ws.seen = r.Header.Clone()
		ws.mu.Unlock()
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw) // echo until the client closes
	}))
	return ws
}

// wsHandshake sends a raw WebSocket upgrade request to addr, with tok if
// not empty, and returns the connection, its reader and the response.
func wsHandshake(t *testing.T, addr, tok string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	req := "GET /ws/chat HTTP/1.1\r\nHost: " + addr + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if tok != "" {
		req += "Authorization: Bearer " + tok + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

// echo writes msg on conn and reads it back from br.
func echo(conn net.Conn, br *bufio.Reader, msg string) error {
	if _, err := io.WriteString(conn, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(br, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

// TestWebSocket: an authenticated Upgrade passes through, and bytes flow
// both ways on the upgraded connection; without a token there is no
// upgrade.
func TestWebSocket(t *testing.T) {
	up := newWSUpstream(t)
	gw := start(t, baseConfig(t, up.URL))

	_, _, resp := wsHandshake(t, gw.addr, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade without a token: %d", resp.StatusCode)
	}

	conn, br, resp := wsHandshake(t, gw.addr, mint(t))
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("upgrade: %d %v", resp.StatusCode, resp.Header)
	}
	for _, msg := range []string{"hello", "world, again"} {
		if err := echo(conn, br, msg); err != nil {
			t.Fatal(err)
		}
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.seen.Get("Authorization") != "" || up.seen.Get("X-Frostmint-Subject") == "" || up.seen.Get("Sec-WebSocket-Key") == "" {
		t.Fatalf("upstream headers: %v", up.seen)
	}
}

// TestShutdownUpgraded: an upgraded connection keeps working during the
// shutdown timeout, and is cut when it ends.
func TestShutdownUpgraded(t *testing.T) {
	up := newWSUpstream(t)
	cfg := baseConfig(t, up.URL)
	cfg.ShutdownTimeout = Duration(time.Second)
	gw := start(t, cfg)
	conn, br, resp := wsHandshake(t, gw.addr, mint(t))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	began := time.Now()
	gw.stop()
	time.Sleep(200 * time.Millisecond)
	if err := echo(conn, br, "still there"); err != nil {
		t.Fatalf("upgraded connection during shutdown: %v", err)
	}
	select {
	case <-gw.done:
		t.Fatal("Serve returned with an upgraded connection open, before the timeout")
	default:
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("read a byte nobody sent")
	}
	if took := time.Since(began); took < 900*time.Millisecond || took > 10*time.Second {
		t.Errorf("upgraded connection cut after %s, want about 1s", took)
	}
	select {
	case err := <-gw.done:
		gw.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// bearer is gRPC per-RPC credentials of a bearer token, over insecure
// transport (the gateway is cleartext h2c here).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// TestGRPC: a grpc-go client reaches a grpc-go server (the standard health
// service on plain TCP) through the gateway over h2c, with a token per
// call; without one the call fails with Unauthenticated.
func TestGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var md metadata.MD
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		mu.Lock()
		md, _ = metadata.FromIncomingContext(ctx)
		mu.Unlock()
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	cfg := baseConfig(t, "h2c://"+lis.Addr().String())
	cfg.Routes = []RouteConfig{{Name: "health", PathPrefix: "/grpc.health.v1.Health/", Methods: []string{"POST"}, Scopes: []string{"read"}}}
	gw := start(t, cfg)

	conn, err := grpc.NewClient("passthrough:///"+gw.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	for i := range 3 {
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.PerRPCCredentials(bearer(mint(t))))
		if err != nil {
			t.Fatalf("Check %d: %v", i, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check %d: %v", i, resp.GetStatus())
		}
	}
	mu.Lock()
	if len(md.Get("authorization")) != 0 || len(md.Get("x-frostmint-subject")) != 1 || len(md.Get("x-request-id")) != 1 {
		t.Errorf("upstream metadata: %v", md)
	}
	mu.Unlock()

	// An unknown service answers NotFound from the upstream, in trailers.
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}, grpc.PerRPCCredentials(bearer(mint(t))))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v", err)
	}

	for _, tc := range []struct {
		name string
		opts []grpc.CallOption
		want codes.Code
	}{
		{"no token", nil, codes.Unauthenticated},
		{"bad token", []grpc.CallOption{grpc.PerRPCCredentials(bearer("x.y.z"))}, codes.Unauthenticated},
		{"missing scope", []grpc.CallOption{grpc.PerRPCCredentials(bearer(mint(t, withScope("write"))))}, codes.PermissionDenied},
	} {
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, tc.opts...)
		if status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
