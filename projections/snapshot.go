package projections

import (
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// Snapshot writes a consistent copy of the projection file to w (bbolt's copy of one read
// transaction, which writers do not wait for) and returns each projection's checkpoint in that
// copy: the log position up to which it holds the views.
func (db *DB) Snapshot(w io.Writer) (map[string]uint64, error) {
	cps := map[string]uint64{}
	err := db.view(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketCheckpoints).ForEach(func(k, v []byte) error {
			cps[string(k)] = decodeSeq(v)
			return nil
		}); err != nil {
			return err
		}
		_, err := tx.WriteTo(w)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("copy the projections: %w", err)
	}
	return cps, nil
}
