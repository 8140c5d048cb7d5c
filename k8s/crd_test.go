package k8s

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The custom resources the chart renders are not in client-go's scheme.
// They are decoded strictly into the subset of their CRDs' fields that the
// chart may use (an unknown field is an error), and their required fields
// and enums checked: cert-manager.io/v1 Issuer and Certificate,
// monitoring.coreos.com/v1 ServiceMonitor.

type issuerRef struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Group string `json:"group"`
}

type cmIssuer struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		SelfSigned *struct{} `json:"selfSigned,omitempty"`
		CA         *struct {
			SecretName string `json:"secretName"`
		} `json:"ca,omitempty"`
	} `json:"spec"`
}

type cmCertificate struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		SecretName     string `json:"secretName"`
		SecretTemplate *struct {
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"secretTemplate,omitempty"`
		IsCA        bool     `json:"isCA,omitempty"`
		CommonName  string   `json:"commonName,omitempty"`
		URIs        []string `json:"uris,omitempty"`
		DNSNames    []string `json:"dnsNames,omitempty"`
		IPAddresses []string `json:"ipAddresses,omitempty"`
		Usages      []string `json:"usages,omitempty"`
		Duration    string   `json:"duration,omitempty"`
		RenewBefore string   `json:"renewBefore,omitempty"`
		PrivateKey  *struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size,omitempty"`
			Encoding       string `json:"encoding,omitempty"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
		} `json:"privateKey,omitempty"`
		IssuerRef issuerRef `json:"issuerRef"`
	} `json:"spec"`
}

type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port      string `json:"port"`
			Path      string `json:"path"`
			Interval  string `json:"interval"`
			Scheme    string `json:"scheme,omitempty"`
			TLSConfig *struct {
				ServerName string `json:"serverName"`
				CA         struct {
					Secret struct {
						Name string `json:"name"`
						Key  string `json:"key"`
					} `json:"secret"`
				} `json:"ca"`
			} `json:"tlsConfig,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// errCustom is wrapped by every problem decodeCustom finds.
var errCustom = errors.New("invalid custom resource")

// strictJSON decodes js into v; unknown fields and trailing data fail.
func strictJSON(js []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errCustom, err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data", errCustom)
	}
	return nil
}

var (
	certUsages = []string{"digital signature", "key encipherment", "server auth", "client auth", "cert sign"}
	keyAlgs    = []string{"ECDSA", "Ed25519"}
)

// decodeCustom checks one custom resource.
func decodeCustom(apiVersion, kind string, js []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s %s: "+format, append([]any{errCustom, apiVersion, kind}, args...)...)
	}
	switch {
	case apiVersion == "cert-manager.io/v1" && kind == "Issuer":
		var v cmIssuer
		if err := strictJSON(js, &v); err != nil {
			return err
		}
		if (v.Spec.SelfSigned == nil) == (v.Spec.CA == nil) {
			return bad("exactly one of selfSigned and ca")
		}
		if v.Spec.CA != nil && v.Spec.CA.SecretName == "" {
			return bad("ca.secretName is required")
		}
	case apiVersion == "cert-manager.io/v1" && kind == "Certificate":
		var v cmCertificate
		if err := strictJSON(js, &v); err != nil {
			return err
		}
		s := v.Spec
		if s.SecretName == "" || s.IssuerRef.Name == "" {
			return bad("secretName and issuerRef.name are required")
		}
		if !slices.Contains([]string{"Issuer", "ClusterIssuer"}, s.IssuerRef.Kind) {
			return bad("issuerRef.kind %q", s.IssuerRef.Kind)
		}
		if s.CommonName == "" && len(s.URIs) == 0 && len(s.DNSNames) == 0 {
			return bad("no subject at all")
		}
		for _, u := range s.Usages {
			if !slices.Contains(certUsages, u) {
				return bad("unknown usage %q", u)
			}
		}
		if s.PrivateKey == nil || !slices.Contains(keyAlgs, s.PrivateKey.Algorithm) {
			return bad("privateKey.algorithm must be one of %v", keyAlgs)
		}
		if s.PrivateKey.Algorithm == "ECDSA" && s.PrivateKey.Size != 256 {
			return bad("ECDSA keys must be P-256")
		}
	case apiVersion == "monitoring.coreos.com/v1" && kind == "ServiceMonitor":
		var v serviceMonitor
		if err := strictJSON(js, &v); err != nil {
			return err
		}
		if len(v.Spec.Selector.MatchLabels) == 0 || len(v.Spec.Endpoints) == 0 {
			return bad("selector and endpoints are required")
		}
		for _, e := range v.Spec.Endpoints {
			if e.Port == "" || e.Path == "" {
				return bad("endpoint without port or path")
			}
		}
	default:
		return bad("not a kind the chart is expected to render")
	}
	return nil
}

// decodeInto strictly decodes a custom resource's JSON (already checked by
// decodeCustom) for assertions.
func decodeInto[T any](o object) (T, error) {
	var v T
	err := strictJSON(o.JSON, &v)
	return v, err
}
