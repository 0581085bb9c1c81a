package projections

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// CheckCounts recounts what the projections keep counts of (the memories by every index,
// single and compound, those reinforced, the project-state entries) one by one and returns
// each count kept that differs from the recount, at most max of them; nil when all agree.
// verify runs it on the live file: a count is updated on each apply, never recounted there.
func (db *DB) CheckCounts(max int) ([]string, error) {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < max {
			out = append(out, fmt.Sprintf(format, args...))
		} else if len(out) == max {
			out = append(out, "... (more differences not shown)")
		}
	}
	err := db.view(func(tx *bolt.Tx) error {
		mems, counts := tx.Bucket(bucketMemories), tx.Bucket(bucketMemCounts)
		if mems == nil || counts == nil {
			return nil
		}
		want := map[string]uint64{}
		if err := mems.ForEach(func(k, v []byte) error {
			if isCreatedKey(k) {
				return nil
			}
			var m domain.Memory
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("memory %s: %w", k, err)
			}
			for _, ik := range memoryIndexKeys(m) {
				want[string(indexKey(ik[0], ik[1], nil))]++
			}
			if m.ReferenceCount > 0 {
				want[keyReinforced]++
			}
			return nil
		}); err != nil {
			return err
		}
		have := map[string]uint64{}
		if err := counts.ForEach(func(k, v []byte) error {
			have[string(k)] = decodeSeq(v)
			return nil
		}); err != nil {
			return err
		}
		compareCounts("memory_counts", have, want, add)
		return nil
	})
	if err != nil {
		return out, err
	}
	kept, err := db.StateCounts()
	if err != nil {
		return out, err
	}
	recount, err := db.RecountState()
	if err != nil {
		return out, err
	}
	flat := func(c StateCounts) map[string]uint64 {
		m := map[string]uint64{}
		for k, n := range map[string]int{stateCountTotal: c.Total, stateCountInvalid: c.Invalid} {
			if n != 0 {
				m[k] = uint64(n)
			}
		}
		for p, n := range c.ByProject {
			m[string(indexKey(stateCountProject, p, nil))] = uint64(n)
		}
		for cat, n := range c.ByCategory {
			m[string(indexKey(stateCountCategory, cat, nil))] = uint64(n)
		}
		return m
	}
	compareCounts("state_counts", flat(kept), flat(recount), add)
	return out, nil
}

// compareCounts reports each key whose kept count (have) is not its recount (want).
func compareCounts(bucket string, have, want map[string]uint64, add func(string, ...any)) {
	keys := map[string]bool{}
	for k := range have {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if have[k] != want[k] {
			add("%s %q: kept %d, recounted %d", bucket, strings.ReplaceAll(strings.TrimSuffix(k, "\x00"), "\x00", " / "), have[k], want[k])
		}
	}
}
