package projections

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// RebuildBatchSize is the batch size of a rebuild: larger than a live runner's, since nobody
// waits for a rebuild's single events.
const RebuildBatchSize = 5000

// Build replays the log from its start up to position upTo into a fresh projection file at
// path (removed first if it exists) and returns it, synced to disk. progress, when set, is
// called after each batch.
func Build(ctx context.Context, path string, src Source, ps []Projection, upTo uint64, progress func(applied uint64)) (*DB, error) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	db, err := Open(path, true)
	if err != nil {
		return nil, err
	}
	r := &Runner{DB: db, Source: src, Projections: ps, BatchSize: RebuildBatchSize, Until: upTo, Progress: progress}
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
	if err := db.Sync(); err != nil {
		db.Close()
		return nil, fmt.Errorf("rebuild: sync: %w", err)
	}
	return db, nil
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
			add("%s %q: in the live projections only: %s", name, lk, lv)
			lk, lv = lc.Next()
		case c > 0:
			add("%s %q: missing in the live projections; rebuilt: %s", name, rk, rv)
			rk, rv = rc.Next()
		default:
			if !bytes.Equal(lv, rv) {
				add("%s %q: live %s; rebuilt %s", name, lk, lv, rv)
			}
			lk, lv = lc.Next()
			rk, rv = rc.Next()
		}
	}
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
