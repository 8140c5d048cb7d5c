// Package telemetrytest helps tests of frostmint's observability: it
// scrapes and reads /metrics, and records spans in memory.
package telemetrytest

import (
	"context"
	"io"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/frostmint/frostmint/verifier/telemetry"
)

// Metrics are scraped metric families by name.
type Metrics map[string]*dto.MetricFamily

// Scrape GETs url (a /metrics endpoint) and parses the text format; it
// fails the test on any error or a status other than 200.
func Scrape(t testing.TB, url string) Metrics {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scraping %s: %s: %s", url, resp.Status, b)
	}
	return Parse(t, resp.Body)
}

// Parse parses the Prometheus text format.
func Parse(t testing.TB, r io.Reader) Metrics {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parsing metrics: %v", err)
	}
	return fams
}

// matching returns the metrics of family name whose labels include every
// pair of labels ("k1", "v1", "k2", "v2", …).
func (m Metrics) matching(name string, labels []string) []*dto.Metric {
	f, ok := m[name]
	if !ok {
		return nil
	}
	var out []*dto.Metric
	for _, mt := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range mt.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, mt)
		}
	}
	return out
}

// Value is the sum of the counters or gauges of family name with the
// given labels, and whether there is any.
func (m Metrics) Value(name string, labels ...string) (float64, bool) {
	ms := m.matching(name, labels)
	v := 0.0
	for _, mt := range ms {
		switch {
		case mt.Counter != nil:
			v += mt.GetCounter().GetValue()
		case mt.Gauge != nil:
			v += mt.GetGauge().GetValue()
		case mt.Untyped != nil:
			v += mt.GetUntyped().GetValue()
		}
	}
	return v, len(ms) > 0
}

// Count is the sum of the sample counts of the histograms of family name
// with the given labels.
func (m Metrics) Count(name string, labels ...string) uint64 {
	var n uint64
	for _, mt := range m.matching(name, labels) {
		n += mt.GetHistogram().GetSampleCount()
	}
	return n
}

// Labels returns the values of label k over the metrics of family name.
func (m Metrics) Labels(name, k string) []string {
	var out []string
	for _, mt := range m.matching(name, nil) {
		for _, l := range mt.GetLabel() {
			if l.GetName() == k {
				out = append(out, l.GetValue())
			}
		}
	}
	return out
}

// Tracer returns a tracer provider for service, with the daemons' sampler,
// that records every span in the returned exporter as soon as it ends. It
// is shut down when the test ends.
func Tracer(t testing.TB, service string) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := telemetry.NewTracerProvider(service, 1, sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}
