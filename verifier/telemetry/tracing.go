package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingConfig turns tracing on: the "tracing" section of a daemon's
// config. A daemon without one traces nothing.
type TracingConfig struct {
	// OTLPEndpoint is the URL of an OpenTelemetry collector's OTLP/HTTP
	// receiver, e.g. "http://127.0.0.1:4318" (spans are posted to
	// /v1/traces unless the URL has a path). http:// is for a collector on
	// the same host or network only; use https:// otherwise.
	OTLPEndpoint string `json:"otlp_endpoint,omitempty"`
	// File writes spans as JSON lines to this file (appended), or to
	// standard output for "-": for development.
	File string `json:"file,omitempty"`
	// SampleRatio is the share of new traces recorded, in (0, 1]; 0 means
	// 1 (every trace). A trace continued from a trusted caller keeps that
	// caller's decision.
	SampleRatio float64 `json:"sample_ratio,omitempty"`
	// ServiceName overrides the service.name resource attribute (the
	// daemon's name, "frostmint-coordinator" or "frostmint-signer-<id>").
	ServiceName string `json:"service_name,omitempty"`
}

// Validate reports every problem of c at once; a nil c is valid (tracing
// off).
func (c *TracingConfig) Validate() error {
	if c == nil {
		return nil
	}
	var errs []error
	switch {
	case c.OTLPEndpoint == "" && c.File == "":
		errs = append(errs, errors.New("tracing: set otlp_endpoint or file (or leave tracing out)"))
	case c.OTLPEndpoint != "" && c.File != "":
		errs = append(errs, errors.New("tracing: set only one of otlp_endpoint and file"))
	}
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("tracing: otlp_endpoint must be an http(s) URL without credentials or query, got %q", c.OTLPEndpoint))
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("tracing: sample_ratio must be in [0, 1], got %v", c.SampleRatio))
	}
	return errors.Join(errs...)
}

// Tracing is a daemon's tracer provider and what it must flush on exit.
type Tracing struct {
	provider trace.TracerProvider
	shutdown func(context.Context) error
	enabled  bool
}

// Provider returns the tracer provider: a no-op one when tracing is off.
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil || t.provider == nil {
		return noop.NewTracerProvider()
	}
	return t.provider
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t != nil && t.enabled }

// Shutdown flushes the spans not yet exported and stops the exporter. It
// is safe to call more than once and on a nil or disabled Tracing.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// NewTracing returns the tracing of c for the daemon service (its default
// service.name): nil c means off. Spans are batched and exported in the
// background; call Shutdown before exiting.
func NewTracing(ctx context.Context, c *TracingConfig, service string) (*Tracing, error) {
	if c == nil {
		return &Tracing{}, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var (
		exp   sdktrace.SpanExporter
		close func() error
		err   error
	)
	switch {
	case c.OTLPEndpoint != "":
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(otlpURL(c.OTLPEndpoint)))
	case c.File == "-":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	default:
		var f *os.File
		f, err = os.OpenFile(c.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("telemetry: tracing file: %w", err)
		}
		close = f.Close
		exp, err = stdouttrace.New(stdouttrace.WithWriter(f))
	}
	if err != nil {
		if close != nil {
			_ = close()
		}
		return nil, fmt.Errorf("telemetry: tracing exporter: %w", err)
	}
	name := c.ServiceName
	if name == "" {
		name = service
	}
	tp := NewTracerProvider(name, c.SampleRatio, sdktrace.WithBatcher(exp))
	return &Tracing{provider: tp, enabled: true, shutdown: func(ctx context.Context) error {
		err := tp.Shutdown(ctx)
		if close != nil {
			err = errors.Join(err, close())
			close = nil
		}
		return err
	}}, nil
}

// NewTracerProvider returns an SDK tracer provider for service with the
// daemons' sampler (see [Sampler]) and the given options (an exporter:
// sdktrace.WithBatcher, or sdktrace.WithSyncer of an in-memory exporter in
// tests). It is not registered globally.
func NewTracerProvider(service string, ratio float64, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	res := resource.NewSchemaless(attribute.String("service.name", service))
	return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(Sampler(ratio)),
	}, opts...)...)
}

// Sampler is the daemons' sampler: a span with a parent follows the
// parent's decision; a root span is recorded for ratio of traces (0 means
// all), except a root client span. Client calls made outside any request
// (the coordinator's background refills and health checks of its
// signers) would otherwise each start a trace of their own.
func Sampler(ratio float64) sdktrace.Sampler {
	if ratio <= 0 || ratio > 1 {
		ratio = 1
	}
	return sdktrace.ParentBased(rootSampler{sdktrace.TraceIDRatioBased(ratio)})
}

type rootSampler struct{ ratio sdktrace.Sampler }

func (r rootSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if p.Kind == trace.SpanKindClient {
		return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
	}
	return r.ratio.ShouldSample(p)
}

func (r rootSampler) Description() string {
	return "FrostmintRoot{no client roots," + r.ratio.Description() + "}"
}

// otlpURL is the collector's URL with the standard traces path when it
// has none.
func otlpURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil { // Validate checked it
		return endpoint
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String()
}
