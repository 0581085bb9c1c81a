package projections_test

import (
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/memledger/memledger/projections"
)

// TestMemoriesCreationPositionBesideJSON checks that a memory's creation position is stored
// next to its JSON, that no read returns it as a memory, and that a file of the layout before
// (a memory_seq bucket, version 4) is dropped and built again to the same views.
func TestMemoriesCreationPositionBesideJSON(t *testing.T) {
	evs := sizeLog(300, 2)
	last := evs[len(evs)-1].Seq
	dir := t.TempDir()
	db, err := projections.Open(filepath.Join(dir, "live.db"), false)
	require.NoError(t, err)
	defer db.Close()
	runUntil(t, newRunner(db, sliceSource(evs), projections.Memories{}), last)

	byID := map[string]uint64{}
	for _, ev := range evs {
		if _, ok := byID[ev.AggregateID]; !ok {
			byID[ev.AggregateID] = ev.Seq
		}
	}
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		require.Nil(t, tx.Bucket([]byte("memory_seq")), "no bucket of its own")
		mems := tx.Bucket([]byte("memories"))
		for id, seq := range byID {
			require.Equal(t, binary.BigEndian.AppendUint64(nil, seq), mems.Get(append([]byte(id), 0)), id)
		}
		require.Equal(t, 2*len(byID), mems.Stats().KeyN, "a memory's JSON and its creation position")
		return nil
	}))
	for id := range byID {
		got, err := db.GetMemory(id + "\x00")
		require.NoError(t, err)
		require.Nil(t, got, "a creation position is not a memory")
		got, err = db.GetMemory(id)
		require.NoError(t, err)
		require.Contains(t, string(got), id)
		break
	}
	ids, _ := listAll(t, db, projections.MemoryFilter{Limit: 50})
	require.Len(t, ids, len(byID), "every memory listed once")
	problems, err := db.CheckCounts(10)
	require.NoError(t, err)
	require.Empty(t, problems)

	// The layout before: the positions in a bucket of their own, version 4.
	require.NoError(t, db.Bolt().Update(func(tx *bolt.Tx) error {
		old, err := tx.CreateBucket([]byte("memory_seq"))
		require.NoError(t, err)
		mems := tx.Bucket([]byte("memories"))
		for id, seq := range byID {
			require.NoError(t, old.Put([]byte(id), binary.BigEndian.AppendUint64(nil, seq)))
			require.NoError(t, mems.Delete(append([]byte(id), 0)))
		}
		return tx.Bucket([]byte("projection_versions")).Put([]byte("memories"), binary.BigEndian.AppendUint64(nil, 4))
	}))
	runUntil(t, newRunner(db, sliceSource(evs), projections.Memories{}), last)
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		require.Nil(t, tx.Bucket([]byte("memory_seq")), "dropped by the migration")
		return nil
	}))
	rebuilt, err := projections.Build(t.Context(), filepath.Join(dir, "rebuilt.db"), sliceSource(evs), []projections.Projection{projections.Memories{}}, last, nil)
	require.NoError(t, err)
	defer rebuilt.Close()
	diffs, err := projections.Diff(db, rebuilt, 10)
	require.NoError(t, err)
	require.Empty(t, diffs)
	after, _ := listAll(t, db, projections.MemoryFilter{Limit: 50})
	require.Equal(t, ids, after)
}

// A file of the old layout that applied nothing loses the old layout's bucket too.
func TestMemoriesMigrationOfAnEmptyFileDropsTheOldBucket(t *testing.T) {
	db, err := projections.Open(filepath.Join(t.TempDir(), "live.db"), false)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Bolt().Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket([]byte("memory_seq")); err != nil {
			return err
		}
		versions, err := tx.CreateBucketIfNotExists([]byte("projection_versions"))
		if err != nil {
			return err
		}
		return versions.Put([]byte("memories"), binary.BigEndian.AppendUint64(nil, 4))
	}))
	r := newRunner(db, sliceSource(nil), projections.Memories{})
	require.NoError(t, r.Init())
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		require.Nil(t, tx.Bucket([]byte("memory_seq")), "dropped by the migration, with nothing applied")
		return nil
	}))
}

// Two events of one event id (a log restored with repeats, a message written by something
// else): the audit's entry by event id is the later one's, in a build as in the live file,
// however many entries a build's flush sorts.
func TestBuildKeepsTheLaterEntryOfARepeatedEventID(t *testing.T) {
	evs := sizeLog(200, 1)
	for i := 100; i < 200; i++ {
		evs[i].ID = evs[i-100].ID
	}
	last := evs[len(evs)-1].Seq
	dir := t.TempDir()
	live, err := projections.Open(filepath.Join(dir, "live.db"), false)
	require.NoError(t, err)
	defer live.Close()
	runUntil(t, newRunner(live, sliceSource(evs), projections.Memories{}), last)
	built, err := projections.Build(t.Context(), filepath.Join(dir, "built.db"), sliceSource(evs), []projections.Projection{projections.Memories{}}, last, nil)
	require.NoError(t, err)
	defer built.Close()
	diffs, err := projections.Diff(live, built, 10)
	require.NoError(t, err)
	require.Empty(t, diffs)
	for _, db := range []*projections.DB{live, built} {
		data, err := db.AuditByEventID(evs[0].ID)
		require.NoError(t, err)
		var e projections.AuditEntry
		require.NoError(t, json.Unmarshal(data, &e))
		require.Equal(t, evs[100].Seq, e.Seq, "the later event's entry")
	}
}
