package projections

import (
	"encoding/binary"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// bucketTimeline is the timeline projection's: time → the first log position that reached it.
var bucketTimeline = []byte("timeline")

// Timeline is the projection that answers "which log position was the last at a given time":
// for the as-of reads and the change feed's from and to times. An event's time comes from its
// writer's clock, so the log's times may step back; the timeline's time of a position is the
// latest event time up to it, which never goes back. It keeps one key per position where that
// time moved on: the time (nanoseconds, big-endian, sign bit flipped) → the position.
type Timeline struct{}

// Name implements Projection.
func (Timeline) Name() string { return "timeline" }

// Init implements Projection.
func (p Timeline) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()...) }

// Version implements Versioned.
func (Timeline) Version() int { return 1 }

// Buckets implements Versioned.
func (Timeline) Buckets() [][]byte { return [][]byte{bucketTimeline} }

// Apply implements Projection.
func (Timeline) Apply(tx *bolt.Tx, ev domain.Event) error {
	if ev.Time.IsZero() {
		return nil // not an event (a malformed message): it has no time
	}
	key := timeKey(ev.Time)
	b := appendBucket(tx, bucketTimeline)
	b.FillPercent = 1 // keys only ever grow
	if last, _ := b.Cursor().Last(); last != nil && string(last) >= string(key) {
		return nil
	}
	return b.Put(key, encodeSeq(ev.Seq))
}

func timeKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(t.UnixNano())^(1<<63))
}

// PositionAt returns the last log position at or before time t (0 when the log's first event
// is later), as far as the timeline has applied the log, and the position it has applied.
func (db *DB) PositionAt(t time.Time) (seq, applied uint64, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		applied = checkpoint(tx, Timeline{}.Name())
		b := tx.Bucket(bucketTimeline)
		if b == nil {
			return nil
		}
		// The first position whose time is after t, less one.
		k, v := b.Cursor().Seek(timeKey(t.Add(time.Nanosecond)))
		if k == nil {
			seq = applied
			return nil
		}
		seq = decodeSeq(v) - 1
		return nil
	})
	return seq, applied, err
}

// FirstAfter returns the first log position whose time is at or after t (applied+1 when the
// timeline has applied no such event yet), and the position the timeline has applied.
func (db *DB) FirstAfter(t time.Time) (seq, applied uint64, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		applied = checkpoint(tx, Timeline{}.Name())
		b := tx.Bucket(bucketTimeline)
		if b == nil {
			seq = applied + 1
			return nil
		}
		k, v := b.Cursor().Seek(timeKey(t))
		if k == nil {
			seq = applied + 1
			return nil
		}
		seq = decodeSeq(v)
		return nil
	})
	return seq, applied, err
}
