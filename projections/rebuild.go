package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// RebuildBatchSize is the batch size of a rebuild: larger than a live runner's, since nobody
// waits for a rebuild's single events.
const RebuildBatchSize = 5000

// rebuildBatchSize is the batch size Build uses (tests make it small).
var rebuildBatchSize = RebuildBatchSize

// buildMmapBytes is how much of a file being built is mapped from the start. bbolt maps a
// growing file again at each doubling of its size (then at each GiB), and a new mapping first
// copies every node the commit under way has changed out of the old one: a profile of a
// rebuild of 100,000 creations put 7 % of the build there. Mapping more than the file holds
// costs address space only.
const buildMmapBytes = 4 << 30

// Build replays the log from its start up to position upTo into a fresh projection file at
// path (removed first if it exists) and returns it, synced to disk. progress, when set, is
// called after each batch. The writes it holds are within a budget of 64 MiB
// (DefaultHeldBytes); BuildHeld takes another.
func Build(ctx context.Context, path string, src Source, ps []Projection, upTo uint64, progress func(applied uint64)) (*DB, error) {
	return BuildHeld(ctx, path, src, ps, upTo, NewHeldBudget(heldBytesMax), progress)
}

// BuildHeld is Build with the writes the projections hold (see HeldBudget) within held (nil for
// the default budget).
func BuildHeld(ctx context.Context, path string, src Source, ps []Projection, upTo uint64, held *HeldBudget, progress func(applied uint64)) (*DB, error) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	db, err := open(path, false, true, false, buildMmapBytes)
	if err != nil {
		return nil, err
	}
	if held == nil {
		held = NewHeldBudget(heldBytesMax)
	}
	ps = slices.Clone(ps)
	defer held.forgetFrom(len(held.holders))
	for i, p := range ps {
		if rb, ok := p.(Rebuilder); ok {
			ps[i] = rb.Rebuilding(held)
		}
	}
	r := &Runner{DB: db, Source: src, Projections: ps, BatchSize: rebuildBatchSize, Until: upTo, Progress: progress, Held: held}
	if err := r.Init(); err != nil {
		db.Close()
		return nil, err
	}
	if upTo > 0 {
		if err := r.Run(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("rebuild: %w", err)
		}
	}
	// The projections that hold writes write them now, whether the log reached upTo or went
	// past it without it (its event removed, say).
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return flushHeld(tx, ps, true) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	if err := db.Sync(); err != nil {
		db.Close()
		return nil, fmt.Errorf("rebuild: sync: %w", err)
	}
	return db, nil
}

// flushHeld writes what every projection of ps holds (Deferrer): all of it, or what the
// projections do not keep when the budget is full.
func flushHeld(tx *bolt.Tx, ps []Projection, all bool) error {
	for _, p := range ps {
		if d, ok := p.(Deferrer); ok {
			if err := d.Flush(tx, all); err != nil {
				return fmt.Errorf("projection %s: flush: %w", p.Name(), err)
			}
		}
	}
	return nil
}

// Diff compares two projection files bucket by bucket and key by key and returns the
// differences, at most max of them, each one readable line; nil when they hold the same data.
func Diff(live, rebuilt *DB, max int) ([]string, error) {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < max {
			out = append(out, fmt.Sprintf(format, args...))
		} else if len(out) == max {
			out = append(out, "... (more differences not shown)")
		}
	}
	err := live.View(func(ltx *bolt.Tx) error {
		return rebuilt.View(func(rtx *bolt.Tx) error {
			names := map[string]bool{}
			for _, tx := range []*bolt.Tx{ltx, rtx} {
				if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
					names[string(name)] = true
					return nil
				}); err != nil {
					return err
				}
			}
			delete(names, string(bucketLogCheck)) // what the log check found, not a view
			for _, name := range slices.Sorted(maps.Keys(names)) {
				lb, rb := ltx.Bucket([]byte(name)), rtx.Bucket([]byte(name))
				switch {
				case lb == nil:
					add("bucket %s: missing in the live projections", name)
				case rb == nil:
					add("bucket %s: in the live projections only", name)
				default:
					diffBucket(name, lb, rb, add)
				}
			}
			return nil
		})
	})
	return out, err
}

func diffBucket(name string, live, rebuilt *bolt.Bucket, add func(string, ...any)) {
	lc, rc := live.Cursor(), rebuilt.Cursor()
	lk, lv := lc.First()
	rk, rv := rc.First()
	for lk != nil || rk != nil {
		switch c := compareKeys(lk, rk); {
		case c < 0:
			add("%s %s: in the live projections only: %s", name, showKey(lk), showValue(name, lv))
			lk, lv = lc.Next()
		case c > 0:
			add("%s %s: missing in the live projections; rebuilt: %s", name, showKey(rk), showValue(name, rv))
			rk, rv = rc.Next()
		default:
			if !bytes.Equal(lv, rv) {
				add("%s %s: live %s; rebuilt %s", name, showKey(lk), showValue(name, lv), showValue(name, rv))
			}
			lk, lv = lc.Next()
			rk, rv = rc.Next()
		}
	}
}

// showKey writes a key for a person: a log position (8 bytes) as its number, a key of
// NUL-separated parts as the parts joined by " / " with a trailing position as a number.
func showKey(k []byte) string {
	if len(k) == 8 {
		return fmt.Sprintf("[seq %d]", decodeSeq(k))
	}
	if i := bytes.LastIndexByte(k, 0); i >= 0 && len(k)-i-1 == 8 {
		return fmt.Sprintf("%q [seq %d]", strings.ReplaceAll(string(k[:i]), "\x00", " / "), decodeSeq(k[i+1:]))
	}
	return fmt.Sprintf("%q", strings.ReplaceAll(string(k), "\x00", " / "))
}

// showValue writes a value of bucket: JSON as it is, a position as its number, an audit entry
// as its head and its change, other bytes quoted.
func showValue(bucket string, v []byte) string {
	if bucket == string(bucketAudit) {
		if r, err := decodeAuditRecord(v); err == nil {
			return fmt.Sprintf("%s (entry %d of its memory, its change %d bytes)", r.head, r.n, len(r.before))
		}
	}
	switch {
	case len(v) == 8 && !utf8.Valid(v):
		return fmt.Sprintf("[%d]", decodeSeq(v))
	case json.Valid(v):
		return string(v)
	}
	return fmt.Sprintf("%q", v)
}

// compareKeys orders keys with nil (the end of a bucket) after every key.
func compareKeys(a, b []byte) int {
	switch {
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return bytes.Compare(a, b)
}
