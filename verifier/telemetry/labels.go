package telemetry

// LatencyBuckets returns the histogram buckets of the daemons' latencies,
// in seconds: from half a millisecond (a policy evaluation) to two and a
// half minutes (a mint waiting for a human's approval).
func LatencyBuckets() []float64 {
	return []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 150}
}

// maxLabel bounds a label value made by [Code].
const maxLabel = 48

// Code returns c when it is a stable code (1 to 48 characters of a-z, 0-9
// and _), else "other": a label value from a code can then never carry a
// subject, a token id or anything a client sent, and the label's
// cardinality stays bounded by the codes the program defines.
func Code(c string) string {
	if c == "" || len(c) > maxLabel {
		return "other"
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '_') {
			return "other"
		}
	}
	return c
}
