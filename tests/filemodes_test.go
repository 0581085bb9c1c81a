package tests

import (
	"bytes"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
)

// Everything in a new data directory is the owner's alone: the directories 0700, the files
// 0600, the alert log included.
func TestDataDirectoryModes(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	l := startLedger(t, withConfig(func(c *app.Config) { c.Data = data }))
	l.create(map[string]any{"memory_type": "knowledge", "content": "private"})
	alertRaise(t, l, map[string]any{"severity": "warning", "title": "to the alert log"})
	alertWaitLines(t, l.cfg.AlertLogPath(), 1)
	l.restart() // the files written at a stop and a start too

	var files, dirs int
	require.NoError(t, filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := d.Info()
		require.NoError(t, err)
		if d.IsDir() {
			dirs++
			require.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "directory %s", path)
		} else {
			files++
			require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "file %s", path)
		}
		return nil
	}))
	require.FileExists(t, filepath.Join(data, "alerts.log"))
	require.FileExists(t, filepath.Join(data, "projections.db"))
	require.Greater(t, files, 5)
	require.Greater(t, dirs, 3, "the log's directories are checked too")
}

// An existing data directory that others can read is used, with a warning at start.
func TestReadableDataDirectoryWarns(t *testing.T) {
	for mode, warns := range map[os.FileMode]bool{0o755: true, 0o750: true, 0o700: false} {
		data := filepath.Join(t.TempDir(), "data")
		require.NoError(t, os.Mkdir(data, mode))
		require.NoError(t, os.Chmod(data, mode))
		cfg := app.DefaultConfig()
		cfg.Addr, cfg.Data, cfg.NightlyAt = "127.0.0.1:0", data, ""
		var log bytes.Buffer
		m := app.NewMain(cfg, slog.New(slog.NewTextHandler(&log, nil)))
		require.NoError(t, m.Open(t.Context()))
		require.NoError(t, m.Close())
		if warns {
			require.Contains(t, log.String(), "the data directory can be read by other users", "mode %#o", mode)
			require.Contains(t, log.String(), "chmod 700")
		} else {
			require.NotContains(t, log.String(), "can be read by other users", "mode %#o", mode)
		}
		st, err := os.Stat(data)
		require.NoError(t, err)
		require.Equal(t, mode, st.Mode().Perm(), "the directory's mode is the operator's to change")
	}
}
