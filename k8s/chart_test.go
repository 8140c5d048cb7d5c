package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/frostmint/frostmint/coordinator"
	"github.com/frostmint/frostmint/signer"
	"github.com/frostmint/frostmint/verifier/gateway"
)

// valueSet is one way of installing the chart, with what it must render.
type valueSet struct {
	name        string
	files       []string // under testdata/
	trustDomain string
	certManager bool
	gateway     bool
	daemonSet   bool
	metricsNS   string
}

var valueSets = []valueSet{
	{name: "defaults", trustDomain: "frostmint.example.com", certManager: true, metricsNS: "monitoring"},
	{name: "dev", files: []string{"dev.yaml"}, trustDomain: "dev.frostmint.local", certManager: true, metricsNS: "monitoring"},
	{name: "production", files: []string{"production.yaml"}, trustDomain: "prod.example.com", certManager: true, metricsNS: "observability"},
	{name: "production+gateway", files: []string{"production.yaml", "gateway.yaml"}, trustDomain: "prod.example.com", certManager: true, gateway: true, metricsNS: "observability"},
	{name: "certmanager-off", files: []string{"certmanager-off.yaml"}, trustDomain: "corp.example.org", metricsNS: "monitoring"},
	{name: "certmanager-off+gateway", files: []string{"certmanager-off.yaml", "gateway.yaml"}, trustDomain: "corp.example.org", gateway: true, metricsNS: "monitoring"},
	{name: "daemonset", files: []string{"daemonset.yaml"}, trustDomain: "frostmint.example.com", certManager: true, daemonSet: true, metricsNS: "monitoring"},
	{name: "production+attested", files: []string{"production.yaml", "attested.yaml"}, trustDomain: "prod.example.com", certManager: true, metricsNS: "observability"},
}

func TestLint(t *testing.T) {
	needHelm(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", ".", "--namespace", namespace, "--kube-version", kubeVersion}, valueArgs(vs.files)...)
			if _, err := runHelm(t, args...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRender renders every value set; render decodes every object
// strictly (client-go scheme and schema, or the custom resources' structs).
// It checks which workloads and resources each set produces.
func TestRender(t *testing.T) {
	needHelm(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			r := render(t, vs.files...)
			if n := len(r.byKind("Deployment")); n != 1+b2i(vs.gateway) {
				t.Errorf("%d Deployments, want the coordinator's%s", n, map[bool]string{true: " and the gateway's"}[vs.gateway])
			}
			wantSTS, wantDS := len(signerIDs(t, r)), 0
			if vs.daemonSet {
				wantSTS, wantDS = 0, wantSTS
			}
			if n := len(r.byKind("StatefulSet")); n != wantSTS {
				t.Errorf("%d StatefulSets, want %d", n, wantSTS)
			}
			if n := len(r.byKind("DaemonSet")); n != wantDS {
				t.Errorf("%d DaemonSets, want %d", n, wantDS)
			}
			if n := len(r.byKind("Certificate")); (n > 0) != vs.certManager {
				t.Errorf("%d cert-manager Certificates with certManager=%v", n, vs.certManager)
			}
			for _, o := range r.Objects {
				if o.Kind == "Secret" {
					t.Errorf("Secret %s rendered: the chart only references Secrets", o.Name)
				}
				if o.Obj == nil && o.Kind != "Certificate" && o.Kind != "Issuer" && o.Kind != "ServiceMonitor" {
					t.Errorf("%s %s was not decoded", o.Kind, o.Name)
				}
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pod is one workload's pod template.
type pod struct {
	workload  string // Kind/name
	component string
	spec      corev1.PodSpec
	labels    map[string]string
}

func pods(t testing.TB, r *rendered) []pod {
	t.Helper()
	var out []pod
	for _, o := range r.Objects {
		var tpl corev1.PodTemplateSpec
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			tpl = v.Spec.Template
		case *appsv1.StatefulSet:
			tpl = v.Spec.Template
		case *appsv1.DaemonSet:
			tpl = v.Spec.Template
		default:
			continue
		}
		out = append(out, pod{workload: o.Kind + "/" + o.Name, component: tpl.Labels["app.kubernetes.io/component"], spec: tpl.Spec, labels: tpl.Labels})
	}
	if len(out) == 0 {
		t.Fatal("no workloads rendered")
	}
	return out
}

// TestPodSecurity checks the Pod Security "restricted" settings, the
// service-account token, resources, probes and spreading of every pod.
func TestPodSecurity(t *testing.T) {
	needHelm(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			r := render(t, vs.files...)
			for _, p := range pods(t, r) {
				checkPod(t, p)
			}
			for _, o := range r.byKind("ServiceAccount") {
				sa := o.Obj.(*corev1.ServiceAccount)
				if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
					t.Errorf("ServiceAccount %s mounts its token", sa.Name)
				}
			}
		})
	}
}

func checkPod(t *testing.T, p pod) {
	t.Helper()
	bad := func(format string, args ...any) { t.Errorf("%s: "+format, append([]any{p.workload}, args...)...) }
	s := p.spec
	if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
		bad("automountServiceAccountToken is not false")
	}
	if s.HostNetwork || s.HostPID || s.HostIPC {
		bad("uses a host namespace")
	}
	psc := s.SecurityContext
	switch {
	case psc == nil:
		bad("no pod securityContext")
	case psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		bad("pod runAsNonRoot is not true")
	case psc.RunAsUser == nil || *psc.RunAsUser == 0:
		bad("pod runAsUser is unset or 0")
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		bad("pod seccompProfile is not RuntimeDefault")
	}
	for _, v := range s.Volumes {
		if v.HostPath != nil {
			bad("hostPath volume %s", v.Name)
		}
	}
	if len(s.InitContainers) > 0 {
		bad("init containers are not expected")
	}
	for _, c := range s.Containers {
		bad := func(format string, args ...any) {
			t.Errorf("%s container %s: "+format, append([]any{p.workload, c.Name}, args...)...)
		}
		sc := c.SecurityContext
		switch {
		case sc == nil:
			bad("no securityContext")
			continue
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
			bad("runAsNonRoot is not true")
		case sc.RunAsUser == nil || *sc.RunAsUser == 0:
			bad("runAsUser is unset or 0")
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			bad("root filesystem is writable")
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			bad("allowPrivilegeEscalation is not false")
		case sc.Privileged != nil && *sc.Privileged:
			bad("privileged")
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			bad("capabilities are not exactly drop [ALL]")
		case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			bad("seccompProfile is not RuntimeDefault")
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[res]; !ok {
				bad("no %s request", res)
			}
			if _, ok := c.Resources.Limits[res]; !ok {
				bad("no %s limit", res)
			}
		}
		// Probes: /healthz (startup, liveness) and /readyz (readiness) on
		// the daemon's metrics/health port.
		healthPort := map[string]string{"coordinator": "http", "signer": "metrics", "gateway": "admin"}[p.component]
		for name, pr := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			want := "/healthz"
			if name == "readiness" {
				want = "/readyz"
			}
			if pr == nil || pr.HTTPGet == nil {
				bad("no %s httpGet probe", name)
				continue
			}
			if pr.HTTPGet.Path != want || pr.HTTPGet.Port != intstr.FromString(healthPort) {
				bad("%s probe is %s on %s, want %s on %s", name, pr.HTTPGet.Path, pr.HTTPGet.Port.String(), want, healthPort)
			}
			if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == healthPort }) {
				bad("probe port %s is not a container port", healthPort)
			}
		}
	}
	// Spread across zones and nodes, selecting the component's pods.
	keys := map[string]bool{}
	for _, tsc := range s.TopologySpreadConstraints {
		sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
		if err != nil || !sel.Matches(labels.Set(p.labels)) {
			bad("topology spread %s does not select the pod itself", tsc.TopologyKey)
		}
		keys[tsc.TopologyKey] = true
	}
	if !keys["topology.kubernetes.io/zone"] || !keys["kubernetes.io/hostname"] {
		bad("topologySpreadConstraints miss zone or hostname: %v", keys)
	}
}

// mountFor returns the volume mount of c under which path p lies.
func mountFor(c corev1.Container, p string) (corev1.VolumeMount, bool) {
	var best corev1.VolumeMount
	found := false
	for _, m := range c.VolumeMounts {
		if (p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/")) && len(m.MountPath) > len(best.MountPath) {
			best, found = m, true
		}
	}
	return best, found
}

// TestDaemonConfigs feeds every rendered daemon config to the daemon's own
// loader and Validate, and checks that every file it names is mounted in
// the pod that uses it (writable where the daemon writes).
func TestDaemonConfigs(t *testing.T) {
	needHelm(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			r := render(t, vs.files...)
			checked := map[string]int{}
			for _, p := range pods(t, r) {
				cm := configMapOf(t, r, p)
				c := p.spec.Containers[0]
				need := func(file string, writable bool) {
					t.Helper()
					m, ok := mountFor(c, file)
					switch {
					case !ok:
						t.Errorf("%s: %s is not on any volume mount", p.workload, file)
					case writable && m.ReadOnly:
						t.Errorf("%s: %s is on read-only mount %s", p.workload, file, m.Name)
					}
				}
				dir := t.TempDir()
				for key, data := range cm.Data {
					f := filepath.Join(dir, key)
					if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
						t.Fatal(err)
					}
					if m, ok := mountFor(c, "/etc/frostmint/config/"+key); !ok || !m.ReadOnly || m.Name != "config" {
						t.Errorf("%s: %s is not mounted read-only from its ConfigMap", p.workload, key)
					}
					if !slices.Contains(c.Args, "/etc/frostmint/config/"+key) {
						t.Errorf("%s: args %v do not name %s", p.workload, c.Args, key)
					}
					switch key {
					case "coordinator.json":
						cfg, err := coordinator.LoadConfig(f)
						if err == nil {
							err = cfg.Validate()
						}
						if err != nil {
							t.Errorf("%s: the coordinator refuses its config: %v\n%s", p.workload, err, data)
							continue
						}
						need(cfg.TLS.Cert, false)
						need(cfg.TLS.Key, false)
						need(cfg.TLS.CA, false)
						need(cfg.Callers.TrustBundle, false)
						need(cfg.KeysDir+"/x", true)
						need(cfg.AuditLog, true)
						for _, pf := range cfg.Policy.Files {
							need(pf, false)
						}
						if a := cfg.Attestation; a != nil {
							for _, root := range a.Verifier.Roots {
								need(root.File, false)
							}
							if a.Verifier.KDS != nil {
								need(a.Verifier.KDS.CacheDir+"/x", true)
							}
						}
						checkIdentities(t, vs, cfg)
						checkPorts(t, p, map[string]string{"grpc": cfg.Listen, "http": cfg.HTTPListen})
					case "signer.json":
						cfg, err := signer.LoadConfig(f)
						if err == nil {
							err = cfg.Validate()
						}
						if err != nil {
							t.Errorf("%s: the signer refuses its config: %v\n%s", p.workload, err, data)
							continue
						}
						need(cfg.TLS.Cert, false)
						need(cfg.TLS.Key, false)
						need(cfg.TLS.CA, false)
						need(cfg.Callers.TrustBundle, false)
						need(cfg.KeysDir+"/x", true)
						need(cfg.AuditLog, true)
						if want := "spiffe://" + vs.trustDomain + "/coordinator"; !slices.Equal(cfg.Coordinators, []string{want}) {
							t.Errorf("%s: coordinators %v, want [%s]", p.workload, cfg.Coordinators, want)
						}
						if src := keystoreSecret(cfg.Keystore); src != "" {
							need(src, false)
							if m, _ := mountFor(c, src); !strings.HasPrefix(src, "/run/secrets/frostmint/") || secretVolume(p, m.Name) == "" {
								t.Errorf("%s: keystore secret %s does not come from a Secret volume", p.workload, src)
							}
						} else if !strings.HasPrefix(cfg.Keystore, "piv:") {
							t.Errorf("%s: keystore %s names no secret source", p.workload, cfg.Keystore)
						}
						if v := cfg.Attestation.Verifier; v != nil {
							for _, root := range v.Roots {
								need(root.File, false)
							}
						}
						checkPorts(t, p, map[string]string{"grpc": cfg.Listen, "metrics": cfg.MetricsListen})
					case "gateway.json":
						cfg, err := gateway.ParseConfig([]byte(data))
						if err == nil {
							err = cfg.Validate()
						}
						if err != nil {
							t.Errorf("%s: the gateway refuses its config: %v\n%s", p.workload, err, data)
							continue
						}
						if rc := cfg.Replay.Redis; rc != nil && rc.PasswordFile != "" {
							need(rc.PasswordFile, false)
						}
						checkPorts(t, p, map[string]string{"http": cfg.Listen, "admin": cfg.AdminListen})
					default:
						t.Errorf("%s: unexpected config key %s", p.workload, key)
					}
					checked[key]++
				}
			}
			if checked["coordinator.json"] != 1 || checked["signer.json"] != len(signerIDs(t, r)) || checked["gateway.json"] != b2i(vs.gateway) {
				t.Errorf("configs checked: %v", checked)
			}
		})
	}
}

// configMapOf returns the ConfigMap mounted as the pod's "config" volume.
func configMapOf(t *testing.T, r *rendered, p pod) *corev1.ConfigMap {
	t.Helper()
	for _, v := range p.spec.Volumes {
		if v.Name == "config" && v.ConfigMap != nil {
			return r.get(t, "ConfigMap", v.ConfigMap.Name).Obj.(*corev1.ConfigMap)
		}
	}
	t.Fatalf("%s has no config volume", p.workload)
	return nil
}

// secretVolume returns the Secret name behind a pod volume, or "".
func secretVolume(p pod, volume string) string {
	for _, v := range p.spec.Volumes {
		if v.Name == volume && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	return ""
}

// keystoreSecret returns the file named by a keystore URI's secret source.
func keystoreSecret(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	q := u.Query()
	src := q.Get("pin-source")
	if u.Scheme == "file" {
		src = q.Get("passphrase")
	}
	f, ok := strings.CutPrefix(src, "file:")
	if !ok {
		return ""
	}
	return f
}

// checkPorts checks that each listen address's port is the named container port.
func checkPorts(t *testing.T, p pod, addrs map[string]string) {
	t.Helper()
	for name, addr := range addrs {
		_, port, _ := strings.Cut(addr, ":")
		if !slices.ContainsFunc(p.spec.Containers[0].Ports, func(cp corev1.ContainerPort) bool {
			return cp.Name == name && fmt.Sprint(cp.ContainerPort) == port
		}) {
			t.Errorf("%s: listens on %s but container port %s is not %s", p.workload, addr, name, port)
		}
	}
}

// checkIdentities checks the coordinator's view of the signers: SPIFFE IDs
// of the trust domain, addresses of the signers' Services.
func checkIdentities(t *testing.T, vs valueSet, cfg coordinator.Config) {
	t.Helper()
	for _, s := range cfg.Signers {
		if want := fmt.Sprintf("spiffe://%s/signer/%d", vs.trustDomain, s.ID); s.Identity != want {
			t.Errorf("signer %d identity %s, want %s", s.ID, s.Identity, want)
		}
		if want := fmt.Sprintf("%s-signer-%d.%s.svc:", release, s.ID, namespace); !s.Guardian && !strings.HasPrefix(s.Addr, want) {
			t.Errorf("signer %d addr %s, want %s…", s.ID, s.Addr, want)
		}
	}
}

// signerIDs returns the ids of the in-cluster signers (their ConfigMaps).
func signerIDs(t testing.TB, r *rendered) []string {
	t.Helper()
	var ids []string
	for _, o := range r.byKind("ConfigMap") {
		if o.Labels["app.kubernetes.io/component"] == "signer" {
			ids = append(ids, o.Labels["frostmint.io/signer-id"])
		}
	}
	return ids
}

// TestCertificates checks that every TLS Secret a daemon mounts is issued
// by cert-manager with the SPIFFE ID the daemons expect, or, without
// cert-manager, that nothing of cert-manager is rendered.
func TestCertificates(t *testing.T) {
	needHelm(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			r := render(t, vs.files...)
			certs := map[string]cmCertificate{}
			for _, o := range r.byKind("Certificate") {
				c, err := decodeInto[cmCertificate](o)
				if err != nil {
					t.Fatal(err)
				}
				certs[c.Spec.SecretName] = c
			}
			if !vs.certManager {
				if len(certs) > 0 || len(r.byKind("Issuer")) > 0 {
					t.Fatal("cert-manager resources rendered with tls.certManager.enabled=false")
				}
			}
			for _, p := range pods(t, r) {
				secret := secretVolume(p, "tls")
				if p.component == "gateway" {
					if secret != "" || secretVolume(p, "ca") != release+"-coordinator-tls" {
						t.Errorf("%s: want only the cluster CA from the coordinator's Secret", p.workload)
					}
					continue
				}
				want := "spiffe://" + vs.trustDomain + "/coordinator"
				if p.component == "signer" {
					want = fmt.Sprintf("spiffe://%s/signer/%s", vs.trustDomain, p.labels["frostmint.io/signer-id"])
				}
				if secret != fmt.Sprintf("%s-%s-tls", release, strings.TrimPrefix(strings.SplitN(p.workload, "/", 2)[1], release+"-")) {
					t.Errorf("%s mounts TLS Secret %q, not its documented name", p.workload, secret)
				}
				if !vs.certManager {
					continue
				}
				c, ok := certs[secret]
				switch {
				case !ok:
					t.Errorf("%s: no Certificate makes Secret %s", p.workload, secret)
				case !slices.Equal(c.Spec.URIs, []string{want}):
					t.Errorf("%s: certificate URIs %v, want [%s]", p.workload, c.Spec.URIs, want)
				case !slices.Contains(c.Spec.Usages, "server auth") || !slices.Contains(c.Spec.Usages, "client auth"):
					t.Errorf("%s: usages %v lack server or client auth", p.workload, c.Spec.Usages)
				case c.Spec.Duration == "" || c.Spec.RenewBefore == "" || c.Spec.PrivateKey.RotationPolicy != "Always":
					t.Errorf("%s: no duration, renewBefore or key rotation", p.workload)
				}
				if p.component == "coordinator" && ok {
					host := fmt.Sprintf("%s-coordinator.%s.svc", release, namespace)
					if !slices.Contains(c.Spec.DNSNames, host) || !slices.Contains(c.Spec.DNSNames, "localhost") {
						t.Errorf("coordinator certificate DNS names %v lack %s or localhost (frostmint mint and ceremony check host names)", c.Spec.DNSNames, host)
					}
				}
			}
		})
	}
}

// selects reports whether a NetworkPolicy's podSelector selects the pod.
func selects(np *networkingv1.NetworkPolicy, p pod) bool {
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	return err == nil && sel.Matches(labels.Set(p.labels))
}

func portsOf(ps []networkingv1.NetworkPolicyPort) []string {
	var out []string
	for _, p := range ps {
		if p.Port == nil {
			out = append(out, "any")
			continue
		}
		out = append(out, p.Port.String())
	}
	return out
}

// TestNetworkPolicies checks, per pod, the union of the rules of every
// policy that selects it.
func TestNetworkPolicies(t *testing.T) {
	needHelm(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			r := render(t, vs.files...)
			var nps []*networkingv1.NetworkPolicy
			defaultDeny := false
			for _, o := range r.byKind("NetworkPolicy") {
				np := o.Obj.(*networkingv1.NetworkPolicy)
				nps = append(nps, np)
				if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 &&
					slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) &&
					len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 {
					defaultDeny = true
				}
			}
			if !defaultDeny {
				t.Fatal("no default-deny (ingress and egress, every pod) NetworkPolicy")
			}
			ports := map[string]map[string]string{ // component -> port name -> number
				"coordinator": {}, "signer": {}, "gateway": {},
			}
			for _, p := range pods(t, r) {
				for _, cp := range p.spec.Containers[0].Ports {
					ports[p.component][cp.Name] = fmt.Sprint(cp.ContainerPort)
				}
			}
			metricsPort := map[string]string{"coordinator": ports["coordinator"]["http"], "signer": ports["signer"]["metrics"], "gateway": ports["gateway"]["admin"]}
			for _, p := range pods(t, r) {
				var ingress []networkingv1.NetworkPolicyIngressRule
				var egress []networkingv1.NetworkPolicyEgressRule
				for _, np := range nps {
					if selects(np, p) {
						ingress = append(ingress, np.Spec.Ingress...)
						egress = append(egress, np.Spec.Egress...)
					}
				}
				metricsSeen := false
				for _, in := range ingress {
					ps := portsOf(in.Ports)
					if len(ps) == 0 || slices.Contains(ps, "any") {
						t.Errorf("%s: an ingress rule allows every port", p.workload)
					}
					if isMetricsPeer(in.From, vs.metricsNS) {
						metricsSeen = true
						if !slices.Equal(ps, []string{metricsPort[p.component]}) {
							t.Errorf("%s: the metrics namespace may reach ports %v", p.workload, ps)
						}
						continue
					}
					if len(in.From) == 0 && p.component != "gateway" {
						t.Errorf("%s: ingress on %v from anywhere", p.workload, ps)
					}
					switch p.component {
					case "coordinator":
						if !slices.Equal(ps, []string{ports["coordinator"]["grpc"]}) && !slices.Equal(ps, []string{ports["coordinator"]["http"]}) {
							t.Errorf("coordinator: ingress on %v, want the Mint or the JWKS port", ps)
						}
					case "signer":
						// Only the coordinator's pods, only on the signer port.
						if !slices.Equal(ps, []string{ports["signer"]["grpc"]}) || len(in.From) != 1 || in.From[0].NamespaceSelector != nil ||
							in.From[0].PodSelector == nil || in.From[0].PodSelector.MatchLabels["app.kubernetes.io/component"] != "coordinator" {
							t.Errorf("signer: ingress rule %+v, want only coordinator pods on %s", in, ports["signer"]["grpc"])
						}
					case "gateway":
						if !slices.Equal(ps, []string{ports["gateway"]["http"]}) {
							t.Errorf("gateway: ingress on %v", ps)
						}
					}
				}
				if !metricsSeen {
					t.Errorf("%s: metrics cannot be scraped from namespace %s", p.workload, vs.metricsNS)
				}
				dns := false
				for _, out := range egress {
					ps := portsOf(out.Ports)
					if slices.Equal(ps, []string{"53", "53"}) {
						dns = true
						continue
					}
					switch p.component {
					case "signer":
						// extraEgress of the production set (a network HSM) is
						// the only exception, and it is explicit.
						if !strings.HasPrefix(vs.name, "production") || !slices.Equal(ps, []string{"2223"}) {
							t.Errorf("signer: egress on %v beyond DNS", ps)
						}
					case "coordinator":
						toSigners := len(out.To) == 1 && out.To[0].PodSelector != nil && out.To[0].PodSelector.MatchLabels["app.kubernetes.io/component"] == "signer"
						if toSigners && !slices.Equal(ps, []string{ports["signer"]["grpc"]}) {
							t.Errorf("coordinator: egress to signers on %v, want only %s", ps, ports["signer"]["grpc"])
						}
						if !toSigners && !strings.HasPrefix(vs.name, "production") {
							t.Errorf("coordinator: egress on %v to %+v", ps, out.To)
						}
					}
				}
				if !dns {
					t.Errorf("%s: DNS is not allowed", p.workload)
				}
			}
		})
	}
}

func isMetricsPeer(from []networkingv1.NetworkPolicyPeer, ns string) bool {
	return len(from) == 1 && from[0].PodSelector == nil && from[0].NamespaceSelector != nil &&
		from[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == ns
}

// writeValues writes a value file for a test into a temporary directory.
func writeValues(t *testing.T, yaml string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func signerList(n int) string {
	var b strings.Builder
	b.WriteString("signers:\n  list:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "    - {id: %d, keystore: \"pkcs11:token=t%d;object=k?module-path=/m.so\", pinSecret: {name: pin-%d, key: pin}}\n", i, i, i)
	}
	return b.String()
}

// TestSignerPDB checks that at most n - t signers are voluntarily down,
// and that t > n or t < 2 fail to render.
func TestSignerPDB(t *testing.T) {
	needHelm(t)
	for _, tc := range []struct {
		n, t      int
		daemonSet bool
		wantErr   bool
	}{
		{n: 2, t: 2}, {n: 3, t: 2}, {n: 5, t: 3}, {n: 5, t: 5}, {n: 7, t: 4},
		{n: 5, t: 3, daemonSet: true},
		{n: 3, t: 4, wantErr: true}, {n: 3, t: 1, wantErr: true}, {n: 1, t: 2, wantErr: true},
	} {
		t.Run(fmt.Sprintf("n=%d_t=%d_daemonset=%v", tc.n, tc.t, tc.daemonSet), func(t *testing.T) {
			vals := signerList(tc.n) + fmt.Sprintf("threshold: %d\n", tc.t)
			if tc.daemonSet {
				vals = strings.Replace(vals, "signers:\n", "signers:\n  mode: daemonset\n", 1)
			}
			out, err := renderRaw(t, writeValues(t, vals))
			if tc.wantErr {
				if !errors.Is(err, errRender) {
					t.Fatalf("rendered, want a failure (err = %v)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := parse(out)
			if err != nil {
				t.Fatal(err)
			}
			pdb := r.get(t, "PodDisruptionBudget", release+"-signers").Obj.(*policyv1.PodDisruptionBudget)
			switch {
			case tc.daemonSet:
				if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != tc.t || pdb.Spec.MaxUnavailable != nil {
					t.Errorf("daemonset PDB %+v, want minAvailable %d", pdb.Spec, tc.t)
				}
			case pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.Type != intstr.Int || pdb.Spec.MaxUnavailable.IntValue() != tc.n-tc.t:
				t.Errorf("PDB %+v, want maxUnavailable %d", pdb.Spec, tc.n-tc.t)
			}
			// It selects every signer pod and nothing else.
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			matched := 0
			for _, p := range pods(t, r) {
				if sel.Matches(labels.Set(p.labels)) {
					if p.component != "signer" {
						t.Errorf("signer PDB selects %s", p.workload)
					}
					matched++
				}
			}
			if matched != tc.n {
				t.Errorf("signer PDB selects %d pods, want %d", matched, tc.n)
			}
		})
	}
}

// TestBadValues: each file in testdata/bad must fail at install time,
// through values.schema.json or a template's fail.
func TestBadValues(t *testing.T) {
	needHelm(t)
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad value sets: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			abs, err := filepath.Abs(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := renderRaw(t, abs)
			if !errors.Is(err, errRender) {
				t.Fatalf("rendered, want a failure (err = %v)", err)
			}
			if bytes.Contains(out, []byte("TESTPIN")) {
				t.Error("a secret value reached the output")
			}
		})
	}
}

// TestSecretsAreReferences: values hold only Secret names and keys. The
// rendered output holds no Secret object and no secret value; each
// signer's PIN Secret is mounted read-only and named by its keystore URI.
func TestSecretsAreReferences(t *testing.T) {
	needHelm(t)
	vals := signerList(3) + "threshold: 2\n"
	r, err := parse(must(renderRaw(t, writeValues(t, vals))))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods(t, r) {
		if p.component != "signer" {
			continue
		}
		id := p.labels["frostmint.io/signer-id"]
		if got := secretVolume(p, "pin"); got != "pin-"+id {
			t.Errorf("%s: PIN volume from Secret %q, want pin-%s", p.workload, got, id)
		}
		m, ok := mountFor(p.spec.Containers[0], "/run/secrets/frostmint/pin")
		if !ok || !m.ReadOnly || m.Name != "pin" {
			t.Errorf("%s: PIN not mounted read-only at /run/secrets/frostmint/pin", p.workload)
		}
		for _, e := range p.spec.Containers[0].Env {
			if e.Value != "" && e.Name != "POD_NAME" {
				t.Errorf("%s: literal env %s", p.workload, e.Name)
			}
		}
	}
	// values.yaml and every good value set: no secret-looking keys.
	for _, f := range append([]string{"values.yaml"}, valueFilesOf(t)...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"pin-value", "pin-source", "passphrase=", "password:", "\n    pin:", "\n      pin:"} {
			if bytes.Contains(b, []byte(bad)) {
				t.Errorf("%s holds %q: secrets must come from Secrets", f, bad)
			}
		}
	}
}

func valueFilesOf(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestNamespace: the namespace is labelled for Pod Security "restricted"
// when the chart renders it.
func TestNamespace(t *testing.T) {
	needHelm(t)
	for _, tc := range []struct {
		files []string
		want  bool
	}{{files: []string{"dev.yaml"}, want: true}, {files: nil, want: false}} {
		r := render(t, tc.files...)
		nss := r.byKind("Namespace")
		if (len(nss) == 1) != tc.want {
			t.Fatalf("%v: %d Namespaces rendered, want %v", tc.files, len(nss), tc.want)
		}
		for _, o := range nss {
			ns := o.Obj.(*corev1.Namespace)
			if ns.Name != namespace {
				t.Errorf("Namespace %s, want the release's %s", ns.Name, namespace)
			}
			for _, mode := range []string{"enforce", "audit", "warn"} {
				if v := ns.Labels["pod-security.kubernetes.io/"+mode]; v != "restricted" {
					t.Errorf("pod-security %s = %q, want restricted", mode, v)
				}
			}
		}
	}
}

// TestServices: signers' Services publish not-ready addresses (a signer is
// not ready before its first key ceremony) and so does the coordinator's
// admin Service; the Mint Service does not.
func TestServices(t *testing.T) {
	needHelm(t)
	r := render(t)
	for _, o := range r.byKind("Service") {
		svc := o.Obj.(*corev1.Service)
		want := svc.Labels["app.kubernetes.io/component"] == "signer" || strings.HasSuffix(svc.Name, "-coordinator-admin")
		if svc.Spec.PublishNotReadyAddresses != want {
			t.Errorf("Service %s publishNotReadyAddresses = %v, want %v", svc.Name, svc.Spec.PublishNotReadyAddresses, want)
		}
		if svc.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("Service %s is %s by default", svc.Name, svc.Spec.Type)
		}
	}
}

// TestAttestationValues: attestation.verify becomes the coordinator's
// attestation section (required by default) with the roots and the KDS
// cache mounted, and attestation.provider every signer's; without
// attestation.verify the coordinator checks nothing.
func TestAttestationValues(t *testing.T) {
	needHelm(t)
	for _, tc := range []struct {
		files    []string
		verify   bool
		provider string
	}{
		{files: []string{"production.yaml"}, verify: false, provider: "auto"},
		{files: []string{"production.yaml", "attested.yaml"}, verify: true, provider: "sev-guest"},
	} {
		t.Run(strings.Join(tc.files, "+"), func(t *testing.T) {
			r := render(t, tc.files...)
			for _, p := range pods(t, r) {
				cm := configMapOf(t, r, p)
				f := filepath.Join(t.TempDir(), "config.json")
				for key, data := range cm.Data {
					if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
						t.Fatal(err)
					}
					switch key {
					case "coordinator.json":
						cfg, err := coordinator.LoadConfig(f)
						if err != nil {
							t.Fatal(err)
						}
						a := cfg.Attestation
						if (a != nil) != tc.verify {
							t.Fatalf("coordinator attestation section: %+v, want present=%v", a, tc.verify)
						}
						if a == nil {
							continue
						}
						v := a.Verifier
						if !a.Required || time.Duration(a.Recheck) != 5*time.Minute || len(v.Measurements) != 1 ||
							v.MinTCB.SNP != 20 || v.MinABI != "1.55" || v.AllowDebug || v.KDS == nil ||
							len(v.Roots) != 1 || v.Roots[0].ProductLine != "Genoa" || v.Roots[0].File != "/etc/frostmint/attest/genoa.pem" {
							t.Errorf("coordinator attestation section not as the values say: %+v", a)
						}
						if vol := volumeNamed(p, "attest-roots"); vol == nil || vol.ConfigMap == nil || vol.ConfigMap.Name != "amd-roots" {
							t.Errorf("the roots ConfigMap is not mounted: %+v", vol)
						}
					case "signer.json":
						cfg, err := signer.LoadConfig(f)
						if err != nil {
							t.Fatal(err)
						}
						a := cfg.Attestation
						if a.Provider != tc.provider {
							t.Errorf("%s: attestation provider %q, want %q", p.workload, a.Provider, tc.provider)
						}
						// attestation.verify.peers: the same check of the peers
						// in ceremonies, but never KDS (signers have no egress).
						if a.PeersRequired != tc.verify || (a.Verifier != nil) != tc.verify {
							t.Fatalf("%s: peers_required %v, verifier %+v; want both iff verify", p.workload, a.PeersRequired, a.Verifier)
						}
						if a.Verifier != nil {
							if a.Verifier.KDS != nil || len(a.Verifier.Measurements) != 1 || len(a.Verifier.Roots) != 1 {
								t.Errorf("%s: signer verifier %+v, want the coordinator's settings without kds", p.workload, a.Verifier)
							}
							if m, ok := mountFor(p.spec.Containers[0], a.Verifier.Roots[0].File); !ok || !m.ReadOnly || m.Name != "attest-roots" {
								t.Errorf("%s: roots file %s not mounted read-only from the roots ConfigMap", p.workload, a.Verifier.Roots[0].File)
							}
						}
					}
				}
			}
		})
	}
}

func volumeNamed(p pod, name string) *corev1.Volume {
	for i := range p.spec.Volumes {
		if p.spec.Volumes[i].Name == name {
			return &p.spec.Volumes[i]
		}
	}
	return nil
}
