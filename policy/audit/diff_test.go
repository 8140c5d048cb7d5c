package audit

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
)

func TestDiff(t *testing.T) {
	allow := func(daemon, jti string, signers ...uint16) Record {
		return Record{Daemon: daemon, Decision: Allow, JTI: jti, Signers: signers}
	}
	deny := func(daemon, jti string) Record {
		return Record{Daemon: daemon, Decision: Deny, Code: "policy_denied", JTI: jti}
	}
	tests := []struct {
		name    string
		coord   []Record
		signers map[uint16][]Record
		missing map[uint16][]string
		unknown map[uint16][]string
	}{
		{
			name:    "empty logs",
			signers: map[uint16][]Record{1: nil, 2: nil},
		},
		{
			name:  "agree",
			coord: []Record{allow("coordinator", "a", 1, 2), deny("coordinator", ""), allow("coordinator", "b", 2, 3)},
			signers: map[uint16][]Record{
				1: {allow("signer-1", "a")},
				2: {allow("signer-2", "a"), deny("signer-2", "x"), allow("signer-2", "b")},
				3: {allow("signer-3", "b")},
			},
		},
		{
			name:  "missing at signer",
			coord: []Record{allow("coordinator", "a", 1, 2), allow("coordinator", "b", 1, 2), allow("coordinator", "c", 1, 2)},
			signers: map[uint16][]Record{
				1: {allow("signer-1", "a"), allow("signer-1", "b"), allow("signer-1", "c")},
				2: {allow("signer-2", "b")},
			},
			missing: map[uint16][]string{2: {"a", "c"}},
		},
		{
			name:  "signer denied what the coordinator says it signed",
			coord: []Record{allow("coordinator", "a", 1)},
			signers: map[uint16][]Record{
				1: {deny("signer-1", "a")},
			},
			missing: map[uint16][]string{1: {"a"}},
		},
		{
			name:  "unknown to coordinator",
			coord: []Record{allow("coordinator", "a", 1), deny("coordinator", "d")},
			signers: map[uint16][]Record{
				1: {allow("signer-1", "a"), allow("signer-1", "z"), allow("signer-1", "d")},
				2: {allow("signer-2", "y"), allow("signer-2", "y")},
			},
			unknown: map[uint16][]string{1: {"d", "z"}, 2: {"y"}},
		},
		{
			name:  "both directions",
			coord: []Record{allow("coordinator", "a", 1, 2), allow("coordinator", "b", 1, 2)},
			signers: map[uint16][]Record{
				1: {allow("signer-1", "a"), allow("signer-1", "b"), allow("signer-1", "evil")},
				2: {allow("signer-2", "b")},
			},
			missing: map[uint16][]string{2: {"a"}},
			unknown: map[uint16][]string{1: {"evil"}},
		},
		{
			name:  "signer outside the signing set",
			coord: []Record{allow("coordinator", "a", 1, 2)},
			signers: map[uint16][]Record{
				1: {allow("signer-1", "a")},
				2: {allow("signer-2", "a")},
				3: {allow("signer-3", "a")},
			},
		},
		{
			name:    "signer log not given",
			coord:   []Record{allow("coordinator", "a", 1, 4)},
			signers: map[uint16][]Record{1: {allow("signer-1", "a")}},
		},
		{
			name:  "duplicates reported once",
			coord: []Record{allow("coordinator", "a", 1), allow("coordinator", "a", 1)},
			signers: map[uint16][]Record{
				1: {allow("signer-1", "q"), allow("signer-1", "q")},
			},
			missing: map[uint16][]string{1: {"a"}},
			unknown: map[uint16][]string{1: {"q"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			coord := appendAll(t, filepath.Join(dir, "coordinator.log"), tt.coord)
			paths := make(map[uint16]string)
			for id, recs := range tt.signers {
				paths[id] = appendAll(t, filepath.Join(dir, fmt.Sprintf("signer-%d.log", id)), recs)
			}
			d, err := Diff(coord, paths)
			if err != nil {
				t.Fatal(err)
			}
			want := DiffResult{MissingAtSigner: tt.missing, UnknownToCoordinator: tt.unknown}
			if want.MissingAtSigner == nil {
				want.MissingAtSigner = map[uint16][]string{}
			}
			if want.UnknownToCoordinator == nil {
				want.UnknownToCoordinator = map[uint16][]string{}
			}
			if !reflect.DeepEqual(d, want) {
				t.Fatalf("Diff = %+v, want %+v", d, want)
			}
			if d.Empty() != (len(tt.missing) == 0 && len(tt.unknown) == 0) {
				t.Fatalf("Empty() = %v for %+v", d.Empty(), d)
			}
		})
	}
}

func TestDiffEmpty(t *testing.T) {
	tests := []struct {
		d    DiffResult
		want bool
	}{
		{DiffResult{}, true},
		{DiffResult{MissingAtSigner: map[uint16][]string{1: nil}}, true},
		{DiffResult{MissingAtSigner: map[uint16][]string{1: {"a"}}}, false},
		{DiffResult{UnknownToCoordinator: map[uint16][]string{7: {"a"}}}, false},
	}
	for _, tt := range tests {
		if got := tt.d.Empty(); got != tt.want {
			t.Errorf("%+v.Empty() = %v, want %v", tt.d, got, tt.want)
		}
	}
}

func TestDiffBrokenLog(t *testing.T) {
	dir := t.TempDir()
	good := writeLog(t, dir, "good.log", 2)
	bad := writeLog(t, dir, "bad.log", 2)
	writeFile(t, bad, readFile(t, bad)[1:])
	for _, tt := range []struct {
		name    string
		coord   string
		signers map[uint16]string
	}{
		{"coordinator", bad, map[uint16]string{1: good}},
		{"signer", good, map[uint16]string{1: good, 2: bad}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Diff(tt.coord, tt.signers)
			brokenAt(t, err, bad, 1)
		})
	}
	if _, err := Diff(good, map[uint16]string{1: filepath.Join(dir, "missing.log")}); err == nil || errors.Is(err, ErrBroken) {
		t.Fatalf("Diff with a missing signer log = %v, want a read error", err)
	}
}

// appendAll writes recs to a new log at path and returns path.
func appendAll(t *testing.T, path string, recs []Record) string {
	t.Helper()
	l, err := Open(path, newClock().now)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, r := range recs {
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	return path
}
