package telemetry

import (
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// untracedMethods are gRPC methods that never get a span: periodic health
// checks and the guardians' long-lived streams.
var untracedMethods = []string{
	"/frostmint.sign.v1.SignerService/Info",
	"/frostmint.sign.v1.GuardianService/Connect",
}

func traced(info *stats.RPCTagInfo) bool {
	for _, m := range untracedMethods {
		if strings.EqualFold(info.FullMethodName, m) {
			return false
		}
	}
	return true
}

// otelOptions are the otelgrpc options of a daemon: its own tracer
// provider, W3C trace context only, and no OpenTelemetry metrics (the
// daemons export Prometheus metrics of their own) — nothing global.
func otelOptions(tp trace.TracerProvider) []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(traced),
	}
}

// GRPCServerOptions returns the server options that trace incoming calls
// with t, continuing the caller's W3C trace context; none when t is off.
// With public set (an API facing callers outside the cluster) the
// caller's trace is linked, not continued: an outside caller neither
// chooses our trace ids nor whether we sample.
func GRPCServerOptions(t *Tracing, public bool) []grpc.ServerOption {
	if !t.Enabled() {
		return nil
	}
	opts := otelOptions(t.Provider())
	if public {
		opts = append(opts, otelgrpc.WithPublicEndpoint())
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(opts...))}
}

// GRPCDialOptions returns the dial options that trace outgoing calls with
// t and send the W3C trace context ("traceparent" metadata) to the
// server; none when t is off.
func GRPCDialOptions(t *Tracing) []grpc.DialOption {
	if !t.Enabled() {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelOptions(t.Provider())...))}
}

// WrapProvider makes a Tracing of a tracer provider made elsewhere (a
// test's in-memory exporter, an embedding application's provider): on,
// unless tp is nil. Its Shutdown does nothing; the owner of tp shuts it
// down.
func WrapProvider(tp trace.TracerProvider) *Tracing {
	if tp == nil {
		return &Tracing{}
	}
	return &Tracing{provider: tp, enabled: true}
}
