package k8s

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/client-go/kubernetes/scheme"
)

const (
	release     = "frostmint"
	namespace   = "frostmint"
	kubeVersion = "1.33.0"
)

// helmPath finds the helm binary once: $FROSTMINT_HELM, .bin/helm at the
// module root, then PATH.
var helmPath = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("FROSTMINT_HELM"); p != "" {
		return p, nil
	}
	if dir, err := os.Getwd(); err == nil {
		for ; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				p := filepath.Join(dir, ".bin", "helm")
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				break
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	return exec.LookPath("helm")
})

// needHelm returns the helm binary, or skips the test (fails it in CI,
// where FROSTMINT_REQUIRE_EMULATORS=1).
func needHelm(t testing.TB) string {
	t.Helper()
	p, err := helmPath()
	if err == nil {
		return p
	}
	msg := "helm not found (set FROSTMINT_HELM, run `make helm` to build .bin/helm, or put helm on PATH): " + err.Error()
	if os.Getenv("FROSTMINT_REQUIRE_EMULATORS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// errRender is wrapped by every failure of helm itself (lint or template).
var errRender = errors.New("helm failed")

// runHelm runs helm with args in the chart directory (the test's working
// directory) and returns its stdout; a non-zero exit wraps errRender and
// carries stderr.
func runHelm(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(needHelm(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// No repositories, plugins or caches of the user's: the chart renders
	// offline from this directory alone.
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+tmp, "HELM_CONFIG_HOME="+tmp, "HELM_DATA_HOME="+tmp)
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%w: helm %s: %v\n%s", errRender, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// valueArgs turns value files (relative to testdata/) into -f flags.
func valueArgs(files []string) []string {
	var args []string
	for _, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join("testdata", f)
		}
		args = append(args, "-f", f)
	}
	return args
}

// renderRaw runs helm template with the value files given.
func renderRaw(t testing.TB, files ...string) ([]byte, error) {
	t.Helper()
	args := append([]string{"template", release, ".", "--namespace", namespace, "--kube-version", kubeVersion}, valueArgs(files)...)
	return runHelm(t, args...)
}

// object is one rendered document: its raw YAML, and the decoded typed
// object for the kinds client-go knows.
type object struct {
	Kind, Name string
	Labels     map[string]string
	Raw        []byte         // the YAML document
	JSON       []byte         // the same, as JSON
	Obj        runtime.Object // nil for custom resources
}

// rendered is a whole rendering.
type rendered struct {
	Raw     []byte
	Objects []object
}

// byKind returns the objects of one kind.
func (r *rendered) byKind(kind string) []object {
	var out []object
	for _, o := range r.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// get returns the object of that kind and name, or fails.
func (r *rendered) get(t testing.TB, kind, name string) object {
	t.Helper()
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return o
		}
	}
	t.Fatalf("no %s %q rendered", kind, name)
	return object{}
}

var (
	strictCodecs  = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict)
	typeConverter = applyconfigurations.NewTypeConverter(scheme.Scheme)
)

// errNotBuiltin means a document's kind is not in client-go's scheme.
var errNotBuiltin = errors.New("kind not in client-go's scheme")

// decodeStrict decodes one document with client-go's scheme in strict mode
// (unknown or duplicate fields fail) and checks it against the OpenAPI
// schema embedded in client-go. Kinds outside the scheme give
// errNotBuiltin.
func decodeStrict(doc []byte) (runtime.Object, error) {
	obj, gvk, err := strictCodecs.UniversalDeserializer().Decode(doc, nil, nil)
	if runtime.IsNotRegisteredError(err) {
		return nil, errNotBuiltin
	}
	if err != nil {
		return nil, fmt.Errorf("strict decoding %v: %w", gvk, err)
	}
	if _, err := typeConverter.ObjectToTyped(obj); err != nil {
		return nil, fmt.Errorf("schema of %v: %w", gvk, err)
	}
	return obj, nil
}

// parse splits a rendering into documents and decodes each; every
// problem is in the joined error.
func parse(out []byte) (*rendered, error) {
	r := &rendered{Raw: out}
	var errs []error
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("splitting the rendering: %w", err)
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("document is not YAML: %w\n%s", err, doc))
			continue
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // only comments
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(js, &head); err != nil || head.APIVersion == "" || head.Kind == "" || head.Metadata.Name == "" {
			errs = append(errs, fmt.Errorf("document without apiVersion, kind or metadata.name:\n%s", doc))
			continue
		}
		o := object{Kind: head.Kind, Name: head.Metadata.Name, Labels: head.Metadata.Labels, Raw: doc, JSON: js}
		obj, err := decodeStrict(doc)
		switch {
		case errors.Is(err, errNotBuiltin):
			if err := decodeCustom(head.APIVersion, head.Kind, js); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err))
			}
		case err != nil:
			errs = append(errs, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err))
		default:
			o.Obj = obj
		}
		r.Objects = append(r.Objects, o)
	}
	return r, errors.Join(errs...)
}

// renderCache renders each value set once per test binary.
var renderCache sync.Map // key string -> *renderResult

type renderResult struct {
	once sync.Once
	r    *rendered
	err  error
}

// render renders (and strictly decodes) the chart with value files from
// testdata/, once per set of files.
func render(t testing.TB, files ...string) *rendered {
	t.Helper()
	v, _ := renderCache.LoadOrStore(strings.Join(files, "\x00"), &renderResult{})
	res := v.(*renderResult)
	res.once.Do(func() {
		out, err := renderRaw(t, files...)
		if err != nil {
			res.err = err
			return
		}
		res.r, res.err = parse(out)
	})
	if res.err != nil {
		t.Fatal(res.err)
	}
	return res.r
}
