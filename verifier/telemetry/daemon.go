package telemetry

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// What the daemons that judge requests (the coordinator and the signers)
// report alike, so that one dashboard reads every daemon of a cluster.

// PolicyInfo returns the collector of frostmint_policy_info: 1, labelled
// with the first 12 hex digits of the policy bundle's hash as hash returns
// it at scrape time (nothing while it returns ""). Every daemon of a
// cluster must show the same.
func PolicyInfo(hash func() string) prometheus.Collector {
	return policyInfo{hash: hash, desc: prometheus.NewDesc("frostmint_policy_info",
		"1, labelled with the first 12 hex digits of the policy bundle's hash: every daemon of a cluster must show the same.",
		[]string{"hash"}, nil)}
}

type policyInfo struct {
	hash func() string
	desc *prometheus.Desc
}

func (p policyInfo) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

func (p policyInfo) Collect(ch chan<- prometheus.Metric) {
	h := p.hash()
	if h == "" {
		return
	}
	// A label value must be UTF-8: never cut inside a rune.
	ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, 1, strings.ToValidUTF8(h[:min(len(h), 12)], ""))
}

// Failed reports whether err, the status a daemon answered a request with,
// is a failure of the daemon's own (the outcome label "error": it could
// not decide or could not act; UNAVAILABLE, INTERNAL, UNKNOWN or
// DATA_LOSS) rather than a refusal of the request ("refused").
func Failed(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.DataLoss:
		return true
	}
	return false
}
