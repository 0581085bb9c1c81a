// Package projections builds the ledger's read views in bbolt from the log: a runner applies
// events in batches, each batch one transaction that writes the views and the checkpoints
// together, so a crash never applies an event twice nor skips one.
package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var bucketCheckpoints = []byte("checkpoints")

// DB is a projection file.
type DB struct {
	Path string
	bolt *bolt.DB
	// marker, for a live file, is the file that says it is open.
	marker string
}

// OpenLive opens the projection file of a running service. Unless sync is set, its commits are
// not fsynced: the projections are derived from the log, which holds the durability guarantee,
// and an fsync per batch would halve the write rate. While the file is open a marker file
// stands beside it; a start that finds the marker knows the last run did not close the file
// (a crash), checks the file, and when it is damaged sets it aside, so that the projections are
// built again from the log.
func OpenLive(path string, sync bool, logger *slog.Logger) (*DB, error) {
	marker := path + ".open"
	if _, err := os.Stat(marker); err == nil {
		if err := checkFile(path); err != nil {
			aside := fmt.Sprintf("%s.damaged-%d", path, time.Now().Unix())
			logger.Error("the projections were not closed cleanly and are damaged; setting them aside and rebuilding them from the log",
				"path", path, "moved_to", aside, "err", err)
			if err := os.Rename(path, aside); err != nil {
				return nil, fmt.Errorf("set damaged projections aside: %w", err)
			}
		} else {
			logger.Warn("the projections were not closed cleanly; the file checks out and is used as it is", "path", path)
		}
	}
	db, err := Open(path, !sync)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(marker, []byte("memledger has this projection file open\n"), 0o644); err != nil {
		db.Close()
		return nil, fmt.Errorf("projections marker: %w", err)
	}
	db.marker = marker
	return db, nil
}

// checkFile runs bbolt's consistency check on the file at path; a file that does not exist is
// fine (it will be built).
func checkFile(path string) error {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if err != nil {
		return err
	}
	defer b.Close()
	return b.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// Open opens (or creates) the projection file at path. noSync skips the fsync of each commit:
// for a rebuild into a fresh file, which is synced once at the end.
func Open(path string, noSync bool) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: noSync, NoFreelistSync: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open projections %s: the file is locked by another process (is memledger serve running on this data directory?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open projections %s: %w", path, err)
	}
	if err := b.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketCheckpoints)
		return err
	}); err != nil {
		b.Close()
		return nil, fmt.Errorf("open projections %s: %w", path, err)
	}
	return &DB{Path: path, bolt: b}, nil
}

// Bolt is the underlying bbolt database.
func (db *DB) Bolt() *bolt.DB { return db.bolt }

// Sync flushes the file to disk.
func (db *DB) Sync() error { return db.bolt.Sync() }

// Close closes the file. A live file is synced first and its marker removed.
func (db *DB) Close() error {
	if db.marker == "" {
		return db.bolt.Close()
	}
	err := errors.Join(db.bolt.Sync(), db.bolt.Close())
	if err == nil {
		err = os.Remove(db.marker)
	}
	return err
}

// View runs fn in a read transaction.
func (db *DB) View(fn func(tx *bolt.Tx) error) error { return db.bolt.View(fn) }

// Checkpoints returns each projection's checkpoint: the log position of the last event it applied.
func (db *DB) Checkpoints() (map[string]uint64, error) {
	cps := map[string]uint64{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCheckpoints).ForEach(func(k, v []byte) error {
			cps[string(k)] = decodeSeq(v)
			return nil
		})
	})
	return cps, err
}

func checkpoint(tx *bolt.Tx, name string) uint64 {
	return decodeSeq(tx.Bucket(bucketCheckpoints).Get([]byte(name)))
}

func setCheckpoint(tx *bolt.Tx, name string, seq uint64) error {
	return tx.Bucket(bucketCheckpoints).Put([]byte(name), encodeSeq(seq))
}

func encodeSeq(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

func decodeSeq(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// present is the value of a key that only says something exists. It is not empty: bbolt's Get
// returns nil for an empty value written earlier in the same transaction.
var present = []byte{1}
