package projections

import (
	bolt "go.etcd.io/bbolt"
)

// bucketLogCheck holds what the log check found: how far it read the log back whole, and the
// damage a check in the background found. It describes the log, not the projections: Diff
// passes over it.
var bucketLogCheck = []byte("log_check")

// The log check's keys.
var (
	logCheckedKey = []byte("checked")
	logDamageKey  = []byte("damage")
)

// LogCheck is what the projection file records of the log check.
type LogCheck struct {
	// Checked is the position up to which every event of the log was read back whole, by a
	// check or by following the log (eventstore.Store.Checked): a start reads the log again
	// only past it, and checks up to it in the background.
	Checked uint64
	// Damage, when not empty, is the report of the damage a check in the background found:
	// the next start checks the whole log before it serves.
	Damage string
}

// LogCheck reads what the file records of the log check.
func (db *DB) LogCheck() (LogCheck, error) {
	var lc LogCheck
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogCheck)
		if b == nil {
			return nil
		}
		lc.Checked = decodeSeq(b.Get(logCheckedKey))
		lc.Damage = string(b.Get(logDamageKey))
		return nil
	})
	return lc, err
}

// SetLogChecked records that the log was read back whole up to seq.
func (db *DB) SetLogChecked(seq uint64) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLogCheck)
		if err != nil {
			return err
		}
		return b.Put(logCheckedKey, encodeSeq(seq))
	})
}

// SetLogDamage records the report of damage found in the log ("" once a whole check found
// none), so that the next start checks the whole log before it serves.
func (db *DB) SetLogDamage(report string) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLogCheck)
		if err != nil {
			return err
		}
		if report == "" {
			return b.Delete(logDamageKey)
		}
		return b.Put(logDamageKey, []byte(report))
	})
}
