package tests

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// projectionDamages are the ways a projection file is found damaged.
var projectionDamages = map[string]func(t *testing.T, path string){
	"half truncated": func(t *testing.T, path string) {
		st, err := os.Stat(path)
		require.NoError(t, err)
		// Cut inside the pages in use: a file bbolt grew ahead of its use can lose its second
		// half without losing a page (and is then not damaged).
		require.NoError(t, os.Truncate(path, min(st.Size()/2, 32<<10)))
	},
	"garbage in the middle": func(t *testing.T, path string) {
		// The middle third of the pages in use: the file runs ahead of them (bbolt grows a
		// file mapped ahead 16 MB at a time), and garbage past them damages nothing.
		used := usedBytes(t, path)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		require.NoError(t, err)
		_, err = f.WriteAt(bytes.Repeat([]byte{0xAB}, int(used/3)), used/3)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	},
}

// usedBytes is how much of the bbolt file at path its pages in use take.
func usedBytes(t *testing.T, path string) int64 {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	var used int64
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		used = tx.Size()
		return nil
	}))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.LessOrEqual(t, used, st.Size())
	return used
}

// A damaged projection file is set aside and built again from the log, by serve and by
// rebuild; verify reports it and exits 1. Nobody dies of it.
func TestDamagedProjectionsAreRebuilt(t *testing.T) {
	for name, damage := range projectionDamages {
		t.Run(name, func(t *testing.T) {
			l := startLedger(t)
			ids := fillLedger(t, l, 300)
			last := l.lastSeq()
			l.stop()

			damage(t, l.cfg.ProjectionsPath())
			code, out, _ := runApp(t, "verify", "--data", l.cfg.Data, "--log-format", "json")
			require.Equal(t, 1, code, out)
			require.Contains(t, out, "PROJECTIONS DAMAGED")

			l.start()
			eventually(t, func() bool { return l.health().Projections["memories"] == last }, "serve rebuilds the projections")
			for _, id := range ids {
				l.get(id)
			}
			aside, _ := filepath.Glob(l.cfg.ProjectionsPath() + ".damaged-*")
			require.Len(t, aside, 1, "serve set the damaged file aside")
			l.stop()

			damage(t, l.cfg.ProjectionsPath())
			code, out, errOut := runApp(t, "rebuild", "--data", l.cfg.Data, "--log-format", "json")
			require.Equal(t, 0, code, "%s\n%s", out, errOut)
			require.Contains(t, errOut, "the projection file is damaged; set aside")
			aside, _ = filepath.Glob(l.cfg.ProjectionsPath() + ".damaged-*")
			require.NotEmpty(t, aside)
			code, out, _ = runApp(t, "verify", "--data", l.cfg.Data, "--log-format", "json")
			require.Equal(t, 0, code, out)
			l.start()
			require.Equal(t, http.StatusOK, l.do("GET", "/memory/"+ids[0], nil).Status)
		})
	}
}
