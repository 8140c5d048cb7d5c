package audit

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzDiff builds a coordinator's log and two signers' logs from an
// arbitrary script of decisions (allows and denies, with and without a
// jti, naming arbitrary signers), gives a third signer an arbitrary file
// as its log, and checks Diff against a plain reference computed from
// ReadAll: the same jtis missing at each signer and unknown to the
// coordinator, sorted, without duplicates or empty entries. A third log
// that ReadAll refuses must make Diff fail with ErrBroken, naming signer
// 3.
func FuzzDiff(f *testing.F) {
	dir := f.TempDir()
	third := writeLog(f, dir, "seed.log", 3)
	f.Add([]byte{0x01, 0x03, 0x3b, 0x02, 0x03, 0x05, 0x12, 0x08, 0x00}, readFile(f, third))
	f.Add([]byte{0x01, 0x07, 0x3e, 0x01, 0x03, 0x00, 0x21, 0x00, 0x20}, []byte{})
	f.Add([]byte{0x05, 0x02, 0xff, 0x05, 0x03, 0x02}, []byte("{\n"))
	f.Fuzz(func(t *testing.T, script, raw []byte) {
		paths := map[string]string{}
		for _, name := range []string{"coordinator", "signer-1", "signer-2", "signer-3"} {
			paths[name] = filepath.Join(dir, name+".log")
			clean(t, paths[name])
		}
		logs := map[string]*Log{}
		for _, name := range []string{"coordinator", "signer-1", "signer-2"} {
			l, err := Open(paths[name], newClock().now)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			logs[name] = l
		}
		// Each step: a jti, which decisions to record, and the signers the
		// coordinator names.
		for i := 0; i+2 < len(script) && i < 3*8; i += 3 {
			jti := fmt.Sprintf("jti-%d", script[i]%6)
			if script[i]&0x80 != 0 {
				jti = ""
			}
			fl, who := script[i+1], script[i+2]
			rec := func(daemon string, allow bool) Record {
				r := Record{Daemon: daemon, Decision: Deny, Code: "policy_denied", JTI: jti}
				if allow {
					r.Decision, r.Code = Allow, ""
				}
				return r
			}
			if fl&1 != 0 {
				r := rec("coordinator", fl&2 != 0)
				for id := uint16(1); id <= 4; id++ {
					if who&(1<<id) != 0 {
						r.Signers = append(r.Signers, id)
					}
				}
				if err := logs["coordinator"].Append(r); err != nil {
					t.Fatal(err)
				}
			}
			for s := 1; s <= 2; s++ {
				if fl&(1<<(2*s)) != 0 {
					if err := logs[fmt.Sprintf("signer-%d", s)].Append(rec(fmt.Sprintf("signer-%d", s), fl&(1<<(2*s+1)) != 0)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		for _, l := range logs {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
		writeFile(t, paths["signer-3"], raw)

		signers := map[uint16]string{1: paths["signer-1"], 2: paths["signer-2"], 3: paths["signer-3"]}
		got, err := Diff(paths["coordinator"], signers)
		recs3, err3 := ReadAll(paths["signer-3"])
		if err3 != nil {
			switch {
			case err == nil,
				errors.Is(err3, ErrBroken) && !errors.Is(err, ErrBroken),
				!strings.Contains(err.Error(), "signer 3"):
				t.Fatalf("signer 3's log fails ReadAll (%v), Diff = %v", err3, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Diff = %v", err)
		}

		// The reference.
		crecs, err := ReadAll(paths["coordinator"])
		if err != nil {
			t.Fatal(err)
		}
		allowed := map[string]map[uint16]bool{}
		for _, r := range crecs {
			if r.Decision == Allow && r.JTI != "" {
				if allowed[r.JTI] == nil {
					allowed[r.JTI] = map[uint16]bool{}
				}
				for _, s := range r.Signers {
					allowed[r.JTI][s] = true
				}
			}
		}
		want := DiffResult{MissingAtSigner: map[uint16][]string{}, UnknownToCoordinator: map[uint16][]string{}}
		for id := uint16(1); id <= 3; id++ {
			recs := recs3
			if id < 3 {
				if recs, err = ReadAll(signers[id]); err != nil {
					t.Fatal(err)
				}
			}
			signed := map[string]bool{}
			for _, r := range recs {
				if r.Decision == Allow && r.JTI != "" {
					signed[r.JTI] = true
				}
			}
			for _, jti := range slices.Sorted(maps.Keys(allowed)) {
				if allowed[jti][id] && !signed[jti] {
					want.MissingAtSigner[id] = append(want.MissingAtSigner[id], jti)
				}
			}
			for _, jti := range slices.Sorted(maps.Keys(signed)) {
				if _, ok := allowed[jti]; !ok {
					want.UnknownToCoordinator[id] = append(want.UnknownToCoordinator[id], jti)
				}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Diff = %+v, want %+v", got, want)
		}
		if got.Empty() != (len(want.MissingAtSigner) == 0 && len(want.UnknownToCoordinator) == 0) {
			t.Fatalf("Empty() = %v for %+v", got.Empty(), got)
		}
	})
}
