package projections

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// lastMeta is the meta page of the file's last commit.
func lastMeta(t *testing.T, path string) boltMeta {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	m0, err := readMeta(f, 0)
	require.NoError(t, err)
	m1, err := readMeta(f, int64(m0.pageSize))
	require.NoError(t, err)
	if m1.txid > m0.txid {
		return m1
	}
	return m0
}

// Every commit of a live file stores its free list, so that a start after a crash (the file
// as the last commit left it, never closed) reads it instead of having bbolt walk every page;
// a build's commits do not (it would cost every batch), and its close stores it.
func TestLiveCommitsStoreTheFreelist(t *testing.T) {
	dir := t.TempDir()
	put := func(db *DB, n int) {
		for i := range n {
			require.NoError(t, db.bolt.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("b"))
				if err != nil {
					return err
				}
				return b.Put([]byte{byte(i)}, make([]byte, 3000))
			}))
		}
	}
	live := filepath.Join(dir, "live.db")
	db, err := OpenLive(live, false, slog.Default())
	require.NoError(t, err)
	put(db, 20)
	require.NotEqual(t, noFreelist, lastMeta(t, live).freelist, "a live commit stores the free list")

	built := filepath.Join(dir, "built.db")
	b, err := Open(built, false)
	require.NoError(t, err)
	put(b, 20)
	require.Equal(t, noFreelist, lastMeta(t, built).freelist, "a build's commit does not")
	require.NoError(t, b.Close())
	require.NotEqual(t, noFreelist, lastMeta(t, built).freelist, "its close does")

	// The live file as a crash leaves it opens, its free list read, not rebuilt.
	crashed := filepath.Join(dir, "crashed.db")
	data, err := os.ReadFile(live)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(crashed, data, 0o600))
	require.NoError(t, db.Close())
	require.NotEqual(t, noFreelist, lastMeta(t, crashed).freelist, "the crash image names its stored free list, which bbolt reads")
	again, err := OpenLive(crashed, false, slog.Default())
	require.NoError(t, err)
	require.NoError(t, again.View(func(tx *bolt.Tx) error {
		require.Equal(t, 20, tx.Bucket([]byte("b")).Stats().KeyN)
		return nil
	}))
	require.NoError(t, again.Close())
}
