package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/eventstore/eventstoretest"
	"github.com/memledger/memledger/handlers/backup"
)

// readManifest reads and checks the manifest of the backup in dir.
func readManifest(t *testing.T, dir string) *backup.Manifest {
	t.Helper()
	m, err := backup.Check(dir)
	require.NoError(t, err)
	return m
}

// exportLines are the lines of an export of the stopped data directory data, without the
// header (its time) and the trailer (its sum of the header).
func exportLines(t *testing.T, data string, args ...string) []string {
	t.Helper()
	code, stdout, errOut := runApp(t, append([]string{"export", "--data", data}, args...)...)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	return lines[1 : len(lines)-1]
}

// restoreBackup restores the backup in from into a new data directory and returns it.
func restoreBackup(t *testing.T, from string) string {
	t.Helper()
	target := filepath.Join(t.TempDir(), "restored")
	code, out, errOut := runApp(t, "restore", "--from", from, "--data", target)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, "every file matches its manifest")
	require.Contains(t, out, "restore: done")
	return target
}

// keepAdminToken copies the admin token of the ledger on from into the restored data
// directory to: a backup holds the tokens as the log does (their digests), never a secret, so
// the operator brings the token they kept, and a restored ledger issues no new one.
func keepAdminToken(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(to, "admin.token"), []byte(adminToken(t, from)+"\n"), 0o600))
}

// verifyClean runs memledger verify on data and requires it clean up to last.
func verifyClean(t *testing.T, data string, last uint64) {
	t.Helper()
	code, out, errOut := runApp(t, "verify", "--data", data)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, fmt.Sprintf("ok, the live projections equal a rebuild of the log up to %d", last))
	require.Contains(t, out, fmt.Sprintf("ok, the live search index equals a rebuild of the log up to %d", last))
}

func TestBackupRestore(t *testing.T) {
	now := time.Date(2026, 4, 16, 12, 0, 0, 0, time.UTC)
	clk := newClock(now)
	l := startLedger(t, withClock(clk.Now))
	memIDs := wholeHistory(t, l, clk, now)

	// Writers go on while the backup is taken.
	type ack struct {
		id  string
		seq uint64
	}
	var mu sync.Mutex
	var acked []ack
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := l.send("POST", "/memory", map[string]any{"memory_type": "episodic", "project": "p-load",
					"content": fmt.Sprintf("writer %d write %d", w, i)})
				if err != nil || res.Status != http.StatusCreated {
					t.Errorf("write: %v %d %s", err, res.Status, res.Body)
					return
				}
				var m struct {
					ID  string `json:"id"`
					Seq uint64 `json:"seq"`
				}
				json.Unmarshal(res.Body, &m)
				mu.Lock()
				acked = append(acked, ack{m.ID, m.Seq})
				mu.Unlock()
			}
		}()
	}
	// Let the writers get going, then take the backup through the service.
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 50 }, 30*time.Second, 10*time.Millisecond)
	mu.Lock()
	before := append([]ack(nil), acked...)
	mu.Unlock()
	live := filepath.Join(t.TempDir(), "live")
	code, out, errOut := runApp(t, "backup", "--to", live, "--data", l.cfg.Data, "--addr", l.Main.Addr())
	close(stop)
	wg.Wait()
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, "through the service at")
	mu.Lock()
	total := len(acked)
	mu.Unlock()
	m := readManifest(t, live)
	t.Logf("backup under writes: %d writes acknowledged before it, %d by the end; it holds positions %d to %d",
		len(before), total, m.FirstSeq, m.LastSeq)
	require.Equal(t, uint64(1), m.FirstSeq)
	require.Equal(t, m.LastSeq, m.Messages)
	require.Equal(t, backup.Format, m.Format)
	require.Equal(t, app.Version, m.MemledgerVersion)
	require.NotNil(t, m.Projections)
	for name, cp := range m.Projections.Checkpoints {
		require.LessOrEqual(t, cp, m.LastSeq, name)
	}
	for _, a := range before {
		require.LessOrEqual(t, a.seq, m.LastSeq, "a write acknowledged before the backup began is in it")
	}
	info, err := os.Stat(live)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	for _, f := range m.Files {
		info, err := os.Stat(filepath.Join(live, f.Name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), f.Name)
	}

	restored := restoreBackup(t, live)
	verifyClean(t, restored, m.LastSeq)

	t.Run("the restored ledger is the log's prefix the backup holds", func(t *testing.T) {
		keepAdminToken(t, l.cfg.Data, restored)
		r := startLedger(t, withClock(clk.Now), withConfig(func(c *app.Config) { c.Data = restored }))
		require.Equal(t, m.LastSeq, r.lastSeq())
		mu.Lock()
		all := append([]ack(nil), acked...)
		mu.Unlock()
		in, out := 0, 0
		for _, a := range all {
			if a.seq <= m.LastSeq {
				require.Equal(t, l.expect(http.StatusOK, "GET", "/memory/"+a.id, nil).Body,
					r.expect(http.StatusOK, "GET", "/memory/"+a.id, nil).Body)
				in++
			} else {
				r.expect(http.StatusNotFound, "GET", "/memory/"+a.id, nil)
				out++
			}
		}
		t.Logf("%d writes in the backup, %d after it", in, out)
		// It goes on writing after the restored log.
		next := r.mem(map[string]any{"memory_type": "knowledge", "content": "after the restore"})
		require.Equal(t, m.LastSeq+1, next.Seq)
	})

	// A backup of a quiet service answers every read as the service does.
	quiet := filepath.Join(t.TempDir(), "quiet")
	code, out, errOut = runApp(t, "backup", "--to", quiet, "--data", l.cfg.Data, "--addr", l.Main.Addr())
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	qm := readManifest(t, quiet)
	require.Equal(t, l.lastSeq(), qm.LastSeq)
	beforeReads := l.everyRead(memIDs)
	quietRestored := restoreBackup(t, quiet)
	verifyClean(t, quietRestored, qm.LastSeq)
	t.Run("the restored ledger answers every read as the original", func(t *testing.T) {
		keepAdminToken(t, l.cfg.Data, quietRestored)
		r := startLedger(t, withClock(clk.Now), withConfig(func(c *app.Config) { c.Data = quietRestored }))
		after := r.everyRead(memIDs)
		for path, body := range beforeReads {
			require.Equal(t, body, after[path], "GET %s", path)
		}
	})

	l.stop()
	t.Run("the log of the first restore is the original's prefix, message for message", func(t *testing.T) {
		want := exportLines(t, l.cfg.Data, "--to", fmt.Sprint(m.LastSeq))
		got := exportLines(t, restored, "--to", fmt.Sprint(m.LastSeq))
		require.Equal(t, want, got)
	})

	t.Run("a backup of a stopped data directory", func(t *testing.T) {
		stopped := filepath.Join(t.TempDir(), "stopped")
		code, out, errOut := runApp(t, "backup", "--to", stopped, "--data", l.cfg.Data)
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
		require.Contains(t, out, "of the stopped data directory")
		sm := readManifest(t, stopped)
		require.Equal(t, qm.LastSeq, sm.LastSeq)
		target := restoreBackup(t, stopped)
		verifyClean(t, target, sm.LastSeq)
		require.Equal(t, exportLines(t, l.cfg.Data), exportLines(t, target))
	})

	t.Run("refusals", func(t *testing.T) {
		testBackupRefusals(t, quiet, l.cfg.Data)
	})

	t.Run("a restore onto an external server cut short leaves no stream there", func(t *testing.T) {
		testRestoreExternalCutShort(t, quiet)
	})

	t.Run("a stopped data directory with damaged projections: the restore builds them from the log", func(t *testing.T) {
		p := filepath.Join(l.cfg.Data, "projections.db")
		info, err := os.Stat(p)
		require.NoError(t, err)
		// Cut inside the pages in use: a file bbolt grew ahead of its use can lose its second
		// half without losing a page (and is then not damaged).
		require.NoError(t, os.Truncate(p, min(info.Size()/2, 32<<10)))
		dir := filepath.Join(t.TempDir(), "no-projections")
		code, out, errOut := runApp(t, "backup", "--to", dir, "--data", l.cfg.Data)
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
		require.Contains(t, out, "no projections (a restore builds them from the log)")
		require.Contains(t, errOut, "the projection file is damaged")
		bm := readManifest(t, dir)
		require.Nil(t, bm.Projections)
		_, held := bm.File(backup.ProjectionsFile)
		require.False(t, held)
		target := restoreBackup(t, dir)
		verifyClean(t, target, bm.LastSeq)
		require.Equal(t, exportLines(t, l.cfg.Data), exportLines(t, target))
	})
}

// copyBackup copies the backup in dir into a new directory, for a test to damage.
func copyBackup(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "copy")
	require.NoError(t, os.MkdirAll(out, 0o700))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(out, e.Name()), data, 0o600))
	}
	return out
}

// cancelOn is the output of a command that cancels it (as Ctrl-C does) once it has written
// a line holding mark.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	mark   string
	cancel context.CancelFunc
}

func (w *cancelOn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.mark) {
		w.cancel()
	}
	return len(p), nil
}

// testRestoreExternalCutShort restores the backup in from onto an external server and
// interrupts it once the log is restored there: the restore deletes the stream it created,
// leaves no directory behind, and a second restore onto the same server is not refused.
func testRestoreExternalCutShort(t *testing.T, from string) {
	m := readManifest(t, from)
	url := eventstoretest.StartServer(t)
	parent := t.TempDir()
	target := filepath.Join(parent, "restored")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out := &cancelOn{mark: "restore: the log restored", cancel: cancel}
	var errOut bytes.Buffer
	code := app.Run(ctx, []string{"restore", "--from", from, "--data", target, "--nats-url", url}, out, &errOut)
	require.Equal(t, 1, code, "stdout: %s\nstderr: %s", out.buf.String(), errOut.String())
	require.Contains(t, out.buf.String(), "restore: the log restored", "interrupted after the log was restored on the server")
	require.NotContains(t, out.buf.String(), "restore: done")
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing is left behind")

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.Stream(t.Context(), m.Stream)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound, "the restored stream is deleted from the server")

	code, stdout, stderr := runApp(t, "restore", "--from", from, "--data", target, "--nats-url", url)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", stdout, stderr)
	require.Contains(t, stdout, "restore: done")
	st, err := js.Stream(t.Context(), m.Stream)
	require.NoError(t, err)
	require.Equal(t, m.LastSeq, st.CachedInfo().State.LastSeq)
}

// testBackupRefusals damages copies of the good backup in good and checks that restore
// refuses each, naming the problem, and leaves nothing behind.
func testBackupRefusals(t *testing.T, good, data string) {
	damage := map[string]struct {
		change func(dir string)
		want   string
	}{
		"a changed manifest": {func(dir string) {
			p := filepath.Join(dir, backup.ManifestFile)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			changed := strings.Replace(string(b), `"consumers": `, `"consumers": 1`, 1)
			require.NotEqual(t, string(b), changed)
			require.NoError(t, os.WriteFile(p, []byte(changed), 0o600))
		}, "the manifest was changed or damaged"},
		"a manifest that is not one": {func(dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, backup.ManifestFile), []byte(`{"format":"other"}`), 0o600))
		}, "not a backup manifest"},
		"no manifest": {func(dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, backup.ManifestFile)))
		}, "no manifest.json"},
		"a truncated log snapshot": {func(dir string) {
			p := filepath.Join(dir, backup.LogFile)
			info, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(p, info.Size()/2))
		}, "log.tar.s2 is damaged: it is"},
		"a byte changed in the projections": {func(dir string) {
			p := filepath.Join(dir, backup.ProjectionsFile)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			b[len(b)/2] ^= 0xff
			require.NoError(t, os.WriteFile(p, b, 0o600))
		}, "projections.db is damaged: its SHA-256 is"},
		"a missing log snapshot": {func(dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, backup.LogFile)))
		}, "log.tar.s2 is missing"},
	}
	for name, d := range damage {
		t.Run(name, func(t *testing.T) {
			dir := copyBackup(t, good)
			d.change(dir)
			parent := t.TempDir()
			target := filepath.Join(parent, "restored")
			code, out, errOut := runApp(t, "restore", "--from", dir, "--data", target)
			require.Equal(t, 1, code, "stdout: %s\nstderr: %s", out, errOut)
			require.Contains(t, errOut, d.want)
			entries, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Empty(t, entries, "nothing is left behind")
		})
	}
	t.Run("a target that is not empty", func(t *testing.T) {
		target := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(target, "keep"), []byte("mine"), 0o600))
		code, out, errOut := runApp(t, "restore", "--from", good, "--data", target)
		require.Equal(t, 1, code, "stdout: %s\nstderr: %s", out, errOut)
		require.Contains(t, errOut, "is not empty (it holds keep)")
		entries, err := os.ReadDir(target)
		require.NoError(t, err)
		require.Len(t, entries, 1)
		// Nor is a data directory in use restored over.
		code, _, errOut = runApp(t, "restore", "--from", good, "--data", data)
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "is not empty")
	})
	t.Run("a backup into a directory that is not empty", func(t *testing.T) {
		code, _, errOut := runApp(t, "backup", "--to", good, "--data", data)
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "is not empty")
		readManifest(t, good) // left as it was
	})
}

func TestBackupEndpointRefusesABody(t *testing.T) {
	l := startLedger(t)
	res := l.expect(http.StatusBadRequest, "POST", "/admin/backup", map[string]any{"to": "/tmp/x"})
	require.Contains(t, string(res.Body), "takes no body")
}
