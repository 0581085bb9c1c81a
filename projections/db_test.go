package projections_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// writeLive opens a live projection file, writes one key and closes it cleanly.
func writeLive(t *testing.T, path string) {
	t.Helper()
	db, err := projections.OpenLive(path, false, quietLogger())
	require.NoError(t, err)
	require.FileExists(t, path+".open", "an open live file has its marker")
	require.NoError(t, db.Bolt().Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("views"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}))
	require.NoError(t, db.Close())
	require.NoFileExists(t, path+".open", "a clean close removes the marker")
}

func readKey(t *testing.T, db *projections.DB) []byte {
	t.Helper()
	var v []byte
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("views")); b != nil {
			v = append([]byte(nil), b.Get([]byte("k"))...)
		}
		return nil
	}))
	return v
}

func TestOpenLiveAfterCleanClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "projections.db")
	writeLive(t, path)
	db, err := projections.OpenLive(path, false, quietLogger())
	require.NoError(t, err)
	defer db.Close()
	require.Equal(t, []byte("v"), readKey(t, db))
}

func TestOpenLiveAfterProcessCrashKeepsTheFile(t *testing.T) {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("this system does not tell its boot id")
	}
	path := filepath.Join(t.TempDir(), "projections.db")
	writeLive(t, path)
	// The process died with the file open; the machine did not restart.
	require.NoError(t, os.WriteFile(path+".open", boot, 0o644))
	db, err := projections.OpenLive(path, false, quietLogger())
	require.NoError(t, err)
	defer db.Close()
	require.Equal(t, []byte("v"), readKey(t, db), "every commit reached the operating system: the file is used as it is")
	matches, _ := filepath.Glob(path + ".unclean-*")
	require.Empty(t, matches)
}

func TestOpenLiveAfterMachineRestartSetsTheFileAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "projections.db")
	writeLive(t, path)
	// Damage the file past its meta pages, as a power loss without fsync can, and leave the
	// marker of a boot that is not this one.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	st, err := f.Stat()
	require.NoError(t, err)
	junk := make([]byte, st.Size()-2*4096)
	for i := range junk {
		junk[i] = 0xA5
	}
	_, err = f.WriteAt(junk, 2*4096)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.WriteFile(path+".open", []byte("another-boot\n"), 0o644))

	db, err := projections.OpenLive(path, false, quietLogger())
	require.NoError(t, err)
	defer db.Close()
	require.Nil(t, readKey(t, db), "the projections start empty, to be built again from the log")
	matches, _ := filepath.Glob(path + ".unclean-*")
	require.Len(t, matches, 1, "the damaged file is kept aside for inspection")
	cps, err := db.Checkpoints()
	require.NoError(t, err)
	require.Empty(t, cps)
}

// A long read (a backup's copy of the file, say) does not hold back the commits of a live file
// while the file grows: bbolt maps a growing file again, and a new mapping waits for every
// read under way, so the live file is mapped well ahead of its size.
func TestALongReadDoesNotHoldBackTheLiveFilesGrowth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "projections.db")
	db, err := projections.OpenLive(path, false, quietLogger())
	require.NoError(t, err)
	defer db.Close()
	read, err := db.Bolt().Begin(false)
	require.NoError(t, err)
	defer read.Rollback()

	grew := make(chan error, 1)
	go func() {
		value := bytes.Repeat([]byte("x"), 1000)
		for i := range 5 { // 5 commits of 1,000 values of 1 KB
			if err := db.Bolt().Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("growth"))
				if err != nil {
					return err
				}
				for j := range 1000 {
					if err := b.Put([]byte(fmt.Sprintf("%04d-%04d", i, j)), value); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				grew <- err
				return
			}
		}
		grew <- nil
	}()
	select {
	case err := <-grew:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the commits wait for the read to end")
	}
	require.NoError(t, db.Bolt().View(func(tx *bolt.Tx) error {
		require.Greater(t, tx.Size(), int64(5<<20), "the pages in use grew past 5 MB during the read; a new file's first mapping is 32 KB")
		return nil
	}))
}
