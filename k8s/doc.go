// Package k8s holds the frostmint Helm chart (Chart.yaml, values.yaml,
// values.schema.json, templates/) and, in its tests, the chart's offline
// validation: helm lint --strict, helm template over the value sets in
// testdata/, strict decoding of every rendered object with client-go's
// scheme and the schema embedded in client-go, the daemons' own config
// loaders over every rendered config, and the security properties the
// chart promises (restricted pods, NetworkPolicies, disruption budgets).
//
// The tests need a helm binary: $FROSTMINT_HELM, else .bin/helm at the
// module root (make helm builds it), else helm on PATH. Without one they
// skip, unless FROSTMINT_REQUIRE_EMULATORS=1 (CI), where they fail.
//
// There is no Go API here; see k8s/README.md for the chart itself.
package k8s
