package audit

import (
	"fmt"
	"maps"
	"slices"
)

// DiffResult is what Diff found. Each list is sorted and free of
// duplicates; a signer with nothing to report has no entry.
type DiffResult struct {
	// MissingAtSigner: jtis the coordinator recorded as allowed with
	// signer s in Signers, but signer s's log has no allow for that jti.
	MissingAtSigner map[uint16][]string
	// UnknownToCoordinator: jtis a signer signed (allow) that the
	// coordinator never recorded as allowed.
	UnknownToCoordinator map[uint16][]string
}

// Empty reports whether the logs agree: d lists no jti at all.
func (d DiffResult) Empty() bool {
	for _, m := range []map[uint16][]string{d.MissingAtSigner, d.UnknownToCoordinator} {
		for _, jtis := range m {
			if len(jtis) > 0 {
				return false
			}
		}
	}
	return true
}

// Diff verifies the coordinator's log and the signers' logs (signers maps
// a signer id to the path of its log) and compares their allow records by
// jti. Records without a jti, and deny records, are not compared. Only the
// signers in the map are checked: a signer the coordinator names but whose
// log is not given is skipped.
//
// Diff fails if any log fails ReadAll: a *BrokenError (errors.Is(err,
// ErrBroken)) names the broken log, and other errors are from reading the
// files.
func Diff(coordinator string, signers map[uint16]string) (DiffResult, error) {
	crecs, err := ReadAll(coordinator)
	if err != nil {
		return DiffResult{}, fmt.Errorf("audit: coordinator log: %w", err)
	}
	// jti -> the signers the coordinator says signed it.
	allowed := make(map[string]map[uint16]bool)
	for _, r := range crecs {
		if r.Decision != Allow || r.JTI == "" {
			continue
		}
		if allowed[r.JTI] == nil {
			allowed[r.JTI] = make(map[uint16]bool)
		}
		for _, s := range r.Signers {
			allowed[r.JTI][s] = true
		}
	}

	d := DiffResult{
		MissingAtSigner:      make(map[uint16][]string),
		UnknownToCoordinator: make(map[uint16][]string),
	}
	for _, id := range slices.Sorted(maps.Keys(signers)) {
		srecs, err := ReadAll(signers[id])
		if err != nil {
			return DiffResult{}, fmt.Errorf("audit: signer %d log: %w", id, err)
		}
		signed := make(map[string]bool)
		for _, r := range srecs {
			if r.Decision == Allow && r.JTI != "" {
				signed[r.JTI] = true
			}
		}
		var missing, unknown []string
		for jti, ss := range allowed {
			if ss[id] && !signed[jti] {
				missing = append(missing, jti)
			}
		}
		for jti := range signed {
			if allowed[jti] == nil {
				unknown = append(unknown, jti)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			d.MissingAtSigner[id] = missing
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			d.UnknownToCoordinator[id] = unknown
		}
	}
	return d, nil
}
