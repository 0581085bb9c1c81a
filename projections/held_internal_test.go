package projections

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// A scattered bucket's held writes stay held through a flush while they hold fewer bytes
// than it keeps, and reads see them meanwhile; a flush that keeps nothing writes them, as it
// writes the other buckets' at every flush.
func TestHeldBucketsKeepAScatteredBucketBelowItsShare(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "held.db"), false)
	require.NoError(t, err)
	defer db.Close()
	scattered, plain := []byte("scattered"), []byte("plain")
	h := newHeldBuckets()
	h.scatter(scattered)
	require.NoError(t, db.bolt.Update(func(tx *bolt.Tx) error {
		require.NoError(t, createBuckets(tx, scattered, plain))
		s, p := h.bucket(tx, scattered), h.bucket(tx, plain)
		require.NoError(t, s.Put([]byte("b"), []byte("2")))
		require.NoError(t, s.Put([]byte("a"), []byte("1")))
		require.NoError(t, p.Put([]byte("x"), []byte("9")))
		held := h.writes[string(scattered)].bytes
		require.Equal(t, held+h.writes[string(plain)].bytes, h.bytes)

		require.NoError(t, h.flush(tx, held+1))
		require.Equal(t, []byte("9"), tx.Bucket(plain).Get([]byte("x")), "the other bucket is written")
		require.Nil(t, tx.Bucket(scattered).Get([]byte("a")), "the scattered one is kept")
		require.Equal(t, held, h.bytes, "what is kept is all that is held")
		require.Equal(t, []byte("1"), h.bucket(tx, scattered).Get([]byte("a")), "a read sees the kept write")

		require.NoError(t, h.bucket(tx, scattered).Delete([]byte("b")))
		require.NoError(t, h.flush(tx, 1)) // it holds more than a byte
		require.Equal(t, []byte("1"), tx.Bucket(scattered).Get([]byte("a")))
		require.Nil(t, tx.Bucket(scattered).Get([]byte("b")), "the held delete is written")
		require.Zero(t, h.bytes)

		require.NoError(t, h.bucket(tx, scattered).Put([]byte("c"), []byte("3")))
		require.NoError(t, h.flush(tx, 0))
		require.Equal(t, []byte("3"), tx.Bucket(scattered).Get([]byte("c")), "a flush that keeps nothing writes it")
		require.Zero(t, h.bytes)
		return nil
	}))
}
