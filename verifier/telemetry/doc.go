// Package telemetry holds what frostmint's daemons share for observability:
// a Prometheus registry per daemon with its /metrics handler, the /healthz
// and /readyz handlers, OpenTelemetry tracing (off unless configured) with
// W3C trace context over gRPC, and the daemons' log/slog loggers (JSON by
// default).
//
// Nothing here is global: every daemon makes its own registry and its own
// tracer provider and hands them to the parts that need them. The
// OpenTelemetry globals (otel.SetTracerProvider and friends) are never set
// or read.
//
// # Metrics
//
// [NewRegistry] returns a registry with the Go runtime and process
// collectors; each daemon registers its own metrics (all named
// frostmint_…, in base units, labelled only by bounded values such as
// outcomes, reasons, codes, routes and signer ids, never by subject or
// token id) and serves them with [MetricsHandler].
//
// # Tracing
//
// A [TracingConfig] (the "tracing" section of a daemon's config) turns
// tracing on: spans go to an OTLP/HTTP collector or, for development, to a
// file as JSON lines. Without it, [NewTracing] returns a no-op provider and
// the gRPC options of [GRPCServerOptions] and [GRPCDialOptions] are empty,
// so tracing costs nothing. Spans carry request ids, signer ids, codes and
// key ids only: never tokens, evidence or secrets.
//
// # Logs
//
// [NewLogger] makes the daemons' logger: JSON lines ("json", the default)
// or logfmt-style text ("text"). As a last line of defence its handler
// replaces the value of any attribute whose key names a credential
// ("token", "authorization", "password", "passphrase", "pin", "secret",
// "evidence", …) with "[redacted]".
package telemetry
