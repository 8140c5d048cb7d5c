package policy

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/util"
)

// bundleFiles returns the files of a bundle directory that its signature
// covers, by slash path: every file but hidden ones (other than
// .manifest), and but .signatures.json itself.
func bundleFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			if d.Name() != ".manifest" {
				return nil
			}
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// sameContent reports whether two versions of a bundle file hold the same
// content: the same bytes, or for JSON documents the same value (an OPA
// bundle signature covers a JSON file's value, not its formatting).
func sameContent(a, b string) bool {
	if a == b {
		return true
	}
	var x, y any
	if util.UnmarshalJSON([]byte(a), &x) != nil || util.UnmarshalJSON([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// FuzzSignedBundle tampers with a signed copy of the default bundle —
// replacing its data.json, its .signatures.json, its policy module or its
// test module with arbitrary bytes, or adding a file of an arbitrary name
// — and loads it requiring the signature. Nothing may panic; a refusal
// wraps ErrLoad, ErrCompile or ErrSignature; and a bundle is only ever
// accepted when every file the signature covers is exactly as signed, so
// that no policy change gets past the signature (a JSON document may be
// reformatted: the signature covers its value).
func FuzzSignedBundle(f *testing.F) {
	k := newTestKey(f, AlgEdDSA)
	signed := signedBundle(f, k)
	orig := map[string][]byte{}
	for _, name := range []string{"data.json", ".signatures.json", "mint.rego", "mint_test.rego"} {
		b, err := os.ReadFile(filepath.Join(signed, name))
		if err != nil {
			f.Fatal(err)
		}
		orig[name] = b
	}
	f.Add(uint8(0), orig["data.json"], "")
	f.Add(uint8(0), append(orig["data.json"][:len(orig["data.json"])-2:len(orig["data.json"])-2], ' ', '}', '\n'), "")
	f.Add(uint8(1), orig[".signatures.json"], "")
	f.Add(uint8(1), []byte(`{"signatures":[]}`), "")
	f.Add(uint8(2), append(orig["mint.rego"], "\n# comment\n"...), "")
	f.Add(uint8(3), []byte("package x\n"), "mint_test.rego")
	f.Add(uint8(4), []byte("{}"), "notes.txt")
	f.Add(uint8(4), []byte("{}"), ".hidden")
	f.Add(uint8(4), []byte(`{"a":1}`), "data.yaml")
	want := bundleFiles(&testing.T{}, signed)
	work := filepath.Join(f.TempDir(), "bundle")
	f.Fuzz(func(t *testing.T, mode uint8, content []byte, name string) {
		if err := os.RemoveAll(work); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(work, os.DirFS(signed)); err != nil {
			t.Fatal(err)
		}
		target := map[uint8]string{0: "data.json", 1: ".signatures.json", 2: "mint.rego", 3: "mint_test.rego"}[mode%5]
		if mode%5 == 4 {
			if name == "" || len(name) > 64 || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
				return
			}
			target = name
		}
		if err := os.WriteFile(filepath.Join(work, target), content, 0o644); err != nil {
			return // a name the file system refuses
		}
		src, err := loadBundle(work, k.verification())
		if err != nil {
			if !errors.Is(err, ErrLoad) && !errors.Is(err, ErrCompile) && !errors.Is(err, ErrSignature) {
				t.Fatalf("loadBundle = %v, want ErrLoad, ErrCompile or ErrSignature", err)
			}
			return
		}
		if got := bundleFiles(t, work); !maps.EqualFunc(got, want, sameContent) || len(got) != len(want) {
			t.Fatalf("a bundle was accepted with %s changed to %q", target, content)
		}
		if len(src.modules) == 0 {
			t.Fatal("an accepted bundle has no module")
		}
	})
}
