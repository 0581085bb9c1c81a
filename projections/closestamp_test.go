package projections

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// closedLive writes a live projection file at path and closes it cleanly.
func closedLive(t *testing.T, path string) {
	t.Helper()
	db, err := OpenLive(path, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.NoFileExists(t, stampPath(path), "an open file has no stamp")
	require.NoError(t, db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("views"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}))
	require.NoError(t, db.Close())
	require.FileExists(t, stampPath(path), "a clean close stamps the file")
}

// A start skips the walk of the pages only for the file a clean close left, untouched since:
// a write, even of the same bytes and with the modification time set back, a copy put in its
// place, or a crash (no stamp) make it walk.
func TestCloseStampSaysWhetherTheFileIsAsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "projections.db")

	closedLive(t, path)
	require.True(t, takeCloseStamp(path), "untouched since its clean close")
	require.NoFileExists(t, stampPath(path), "the stamp is used once")
	require.False(t, takeCloseStamp(path), "no stamp: walk")

	closedLive(t, path)
	st, err := os.Stat(path)
	require.NoError(t, err)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	page := make([]byte, 16)
	_, err = f.ReadAt(page, 3*4096)
	require.NoError(t, err)
	_, err = f.WriteAt(page, 3*4096) // the same bytes written again
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Chtimes(path, time.Now(), st.ModTime()))
	require.False(t, takeCloseStamp(path), "written since the close, whatever its modification time says")

	closedLive(t, path)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path+".copy", data, 0o600))
	require.NoError(t, os.Rename(path+".copy", path))
	require.False(t, takeCloseStamp(path), "another file (a copy) in its place")

	// Opened live, the stamp is taken: a crash after it leaves none behind.
	closedLive(t, path)
	db, err := OpenLive(path, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.NoFileExists(t, stampPath(path))
	require.NoError(t, db.bolt.Close()) // as a crash would leave it: no stamp, the marker stays
	require.False(t, takeCloseStamp(path))
}
