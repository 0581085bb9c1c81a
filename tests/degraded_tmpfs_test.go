package tests

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/stretchr/testify/require"
)

// A real full disk under the projections: the projection file lives on a small tmpfs (the
// data directory's projections.db is a link to it), which the test fills. Writes answer 507,
// reads are served, and once space is freed the service resumes without a restart. Mounting
// needs the right to (root); where the test has none it skips, and the injected-error tests
// (degraded_test.go) cover the same paths.
func TestProjectionsOnAFullDiskDegradeAndRecover(t *testing.T) {
	dir := t.TempDir()
	mnt := mountTmpfs(t, dir, "8m")
	data := filepath.Join(dir, "data")
	require.NoError(t, os.Mkdir(data, 0o700))
	require.NoError(t, os.Symlink(filepath.Join(mnt, "projections.db"), filepath.Join(data, "projections.db")))
	l := startLedger(t, withConfig(func(c *app.Config) { c.Data = data }))
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "before the disk filled"})
	// Read once, so committed to the projections before the disk fills: a write answered just
	// before is committed within 20 ms (see the README's Durability section), and one whose
	// commit meets the full disk is read again only once space is freed.
	require.Equal(t, "before the disk filled", l.get(m.ID).Content)

	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)

	// The file has some room left in its pages: write until the projections run out of it.
	content := strings.Repeat("a memory to fill the disk with. ", 60)
	var full response
	for i := 0; i < 5000; i++ {
		full = l.do("POST", "/memory", map[string]any{"memory_type": "knowledge", "content": content})
		if full.Status != http.StatusCreated {
			break
		}
	}
	requireProblem(t, full, http.StatusInsufficientStorage, "", "no space left on device")
	requireProblem(t, l.do("PUT", "/memory/"+m.ID, map[string]any{"content": "refused"}), http.StatusInsufficientStorage, "", "nothing was written")
	require.Contains(t, l.degradedHealth(t).Error, "no space left on device")
	res := l.expect(http.StatusOK, "GET", "/memory/"+m.ID, nil)
	require.Equal(t, "before the disk filled", res.JSON(t)["content"])

	require.NoError(t, os.Remove(filler))
	eventually(t, l.healthOK, "the service resumes once space is freed")
	l.mem(map[string]any{"memory_type": "knowledge", "content": "after"})
	require.Equal(t, "before the disk filled", l.get(m.ID).Content, "the refused update was never written")
	eventually(t, func() bool { return len(l.writeFailureAlerts(t)) == 1 }, "one critical alert")
}

// mountTmpfs mounts a tmpfs of size under dir and returns its path; where the test has no
// right to mount it skips, and the injected-error tests (degraded_test.go) cover the paths.
func mountTmpfs(t *testing.T, dir, size string) string {
	t.Helper()
	mnt := filepath.Join(dir, "tmpfs")
	require.NoError(t, os.Mkdir(mnt, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); the injected full disk of degraded_test.go is tested instead", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	return mnt
}

// fillDisk writes a file at path until its disk is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "filling the disk: %v", err)
			break
		}
	}
	require.NoError(t, f.Close())
}

// A real full disk under the log: the embedded server's store lives on a small tmpfs (the
// data directory's nats is a link to it). The server switches JetStream off on its first
// write that finds no room; writes are refused, reads are served, and once space is freed
// memledger switches JetStream back on and takes writes again, without a restart. Every write
// that was acknowledged is there, before and after a restart.
func TestLogOnAFullDiskDegradesAndRecovers(t *testing.T) {
	dir := t.TempDir()
	mnt := mountTmpfs(t, dir, "24m")
	data := filepath.Join(dir, "data")
	require.NoError(t, os.Mkdir(data, 0o700))
	require.NoError(t, os.Mkdir(filepath.Join(mnt, "nats"), 0o700))
	require.NoError(t, os.Symlink(filepath.Join(mnt, "nats"), filepath.Join(data, "nats")))
	l := startLedger(t, withConfig(func(c *app.Config) { c.Data = data }), func(l *ledger) { l.logReviveFree = 4 << 20 })
	// An alert watch open throughout goes on through JetStream's restart.
	watch, closeWatch := alertWatchStream(t, l, "")
	defer closeWatch()
	acked := []string{l.mem(map[string]any{"memory_type": "knowledge", "content": "before the disk filled"}).ID}
	content := strings.Repeat("a memory to fill the disk with. ", 60)
	for i := 0; i < 200; i++ {
		acked = append(acked, l.mem(map[string]any{"memory_type": "knowledge", "content": content}).ID)
	}

	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)
	var full response
	for i := 0; i < 20000; i++ {
		full = l.do("POST", "/memory", map[string]any{"memory_type": "knowledge", "content": content})
		if full.Status != http.StatusCreated {
			break
		}
		acked = append(acked, full.JSON(t)["id"].(string))
	}
	require.Contains(t, []int{http.StatusInsufficientStorage, http.StatusServiceUnavailable}, full.Status, "%s", full.Body)
	eventually(t, func() bool { return l.Main.Store.Broken() != nil }, "the store knows the log cannot be written")
	requireProblem(t, l.do("PUT", "/memory/"+acked[0], map[string]any{"content": "refused"}), http.StatusInsufficientStorage, "", "no space left on device")
	require.Contains(t, l.degradedHealth(t).Error, "the log")
	res := l.expect(http.StatusOK, "GET", "/memory/"+acked[0], nil)
	require.Equal(t, "before the disk filled", res.JSON(t)["content"])

	require.NoError(t, os.Remove(filler))
	eventually(t, func() bool { return l.Main.Store.Broken() == nil }, "JetStream is restarted once space is freed")
	eventually(t, l.healthOK, "the service resumes")
	acked = append(acked, l.mem(map[string]any{"memory_type": "knowledge", "content": "after"}).ID)
	require.Equal(t, "before the disk filled", l.get(acked[0]).Content, "the refused update was never written")
	eventually(t, func() bool { return len(l.writeFailureAlerts(t)) == 1 }, "one critical alert")
	for _, id := range acked {
		l.expect(http.StatusOK, "GET", "/memory/"+id, nil)
	}
	// The watch shows the alerts raised, the write failure's among them, raised once JetStream
	// was back.
	want := l.writeFailureAlerts(t)[0]["id"]
	var seen []string
	for a := alertNextLine(t, watch); a.ID != want; a = alertNextLine(t, watch) {
		seen = append(seen, a.Title)
		require.Less(t, len(seen), 20, "the watch has not shown the write failure's alert: %v", seen)
	}

	// verify compares both views with the log: stop once each has applied all of it (the search
	// index follows the log on its own).
	last, err := l.Main.Store.LastSeq(t.Context())
	require.NoError(t, err)
	require.NoError(t, l.Main.Runner.WaitFor(t.Context(), last))
	require.NoError(t, l.Main.Search.WaitFor(t.Context(), last))
	l.stop()
	verifyClean(t, data, last)
	l.start()
	for _, id := range acked {
		l.expect(http.StatusOK, "GET", "/memory/"+id, nil)
	}
	t.Logf("%d writes acknowledged; all there after the recovery and after a restart", len(acked))
}
