package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// dataFileName is the name of data documents inside a policy directory; a
// data.json in directory a/b of a loaded tree is mounted at data.a.b, one at
// the root at data.
const dataFileName = "data.json"

// source is one loaded file.
type source struct {
	name    string // for messages: the disk path, or "bundle/<rel>" when embedded
	rel     string // slash path relative to the root it was loaded from
	content []byte
}

// sources is a loaded policy: Rego modules and JSON data documents.
type sources struct {
	modules []source
	data    []source
}

func isTestModule(p string) bool { return strings.HasSuffix(p, "_test.rego") }

// loadFS loads every .rego file and every data.json in fsys. Test modules are
// kept only if withTests is set. namePrefix is prepended to rel to form
// source.name. Files and directories whose names start with "." are
// skipped: version control and editor files, and the timestamped copies
// Kubernetes keeps beside the files of a mounted ConfigMap (..data), which
// would otherwise be loaded twice.
func loadFS(fsys fs.FS, namePrefix string, withTests bool, into *sources) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		switch {
		case path.Ext(p) == ".rego":
			if isTestModule(p) && !withTests {
				return nil
			}
		case path.Base(p) == dataFileName:
		default:
			return nil
		}
		content, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		s := source{name: path.Join(namePrefix, p), rel: p, content: content}
		if path.Ext(p) == ".rego" {
			into.modules = append(into.modules, s)
		} else {
			into.data = append(into.data, s)
		}
		return nil
	})
}

// loadPaths loads policy files and directories from disk. A directory is
// walked as by loadFS. A file must be a .rego module (a *_test.rego file is
// skipped) or a .json data document, mounted at the root of data.
func loadPaths(paths []string) (*sources, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no policy paths given", ErrLoad)
	}
	var src sources
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrLoad, err)
		}
		if info.IsDir() {
			if err := loadFS(os.DirFS(p), p, false, &src); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrLoad, err)
			}
			continue
		}
		base := filepath.Base(p)
		switch filepath.Ext(p) {
		case ".rego", ".json":
		default:
			return nil, fmt.Errorf("%w: %s: not a .rego or .json file", ErrLoad, p)
		}
		if isTestModule(base) {
			continue
		}
		content, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrLoad, err)
		}
		s := source{name: p, rel: base, content: content}
		if filepath.Ext(p) == ".rego" {
			src.modules = append(src.modules, s)
		} else {
			// A data file named on the command line is mounted at the root,
			// whatever its name.
			s.rel = dataFileName
			src.data = append(src.data, s)
		}
	}
	return &src, nil
}

// parse parses the Rego modules (Rego v1 syntax) and merges the data
// documents into one tree.
func (s *sources) parse() (map[string]*ast.Module, map[string]any, error) {
	if len(s.modules) == 0 {
		return nil, nil, fmt.Errorf("%w: no .rego policy modules found", ErrLoad)
	}
	modules := make(map[string]*ast.Module, len(s.modules))
	var errs []error
	for _, m := range s.modules {
		if _, dup := modules[m.name]; dup {
			return nil, nil, fmt.Errorf("%w: module %s loaded twice", ErrLoad, m.name)
		}
		parsed, err := ast.ParseModuleWithOpts(m.name, string(m.content), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		modules[m.name] = parsed
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("%w: %w", ErrCompile, errors.Join(errs...))
	}

	data := map[string]any{}
	for _, d := range s.data {
		var doc any
		if err := util.UnmarshalJSON(d.content, &doc); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", ErrLoad, d.name, err)
		}
		obj, ok := doc.(map[string]any)
		if !ok {
			return nil, nil, fmt.Errorf("%w: %s: data document must be a JSON object", ErrLoad, d.name)
		}
		// Mount at the file's directory: a/b/data.json -> data.a.b.
		if dir := path.Dir(d.rel); dir != "." {
			segs := strings.Split(dir, "/")
			for i := len(segs) - 1; i >= 0; i-- {
				obj = map[string]any{segs[i]: obj}
			}
		}
		if err := mergeData(data, obj, ""); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", ErrLoad, d.name, err)
		}
	}
	return modules, data, nil
}

// mergeData deep-merges src into dst. Objects merge; any other value may be
// set once only.
func mergeData(dst, src map[string]any, at string) error {
	for k, v := range src {
		p := at + "/" + k
		old, exists := dst[k]
		if !exists {
			dst[k] = v
			continue
		}
		oldObj, ok1 := old.(map[string]any)
		newObj, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			return fmt.Errorf("conflicting data at %s", p)
		}
		if err := mergeData(oldObj, newObj, p); err != nil {
			return err
		}
	}
	return nil
}

// hash is the hex SHA-256 over the modules and data documents that are
// evaluated, in order of their relative path. Each file contributes its
// relative path and its content, both length-prefixed, so the same bundle
// hashes the same wherever it is loaded from.
func (s *sources) hash() string {
	all := slices.Concat(s.modules, s.data)
	slices.SortFunc(all, func(a, b source) int {
		if c := strings.Compare(a.rel, b.rel); c != 0 {
			return c
		}
		return bytes.Compare(a.content, b.content)
	})
	h := sha256.New()
	var n [8]byte
	for _, f := range all {
		binary.BigEndian.PutUint64(n[:], uint64(len(f.rel)))
		h.Write(n[:])
		h.Write([]byte(f.rel))
		binary.BigEndian.PutUint64(n[:], uint64(len(f.content)))
		h.Write(n[:])
		h.Write(f.content)
	}
	return hex.EncodeToString(h.Sum(nil))
}
