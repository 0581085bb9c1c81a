package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/stretchr/testify/require"
)

// wholeHistory writes a history touching every kind of aggregate (memories through every
// mutation, projects, project state, documents, alerts, an integrity run, a nightly run) and
// returns the memory ids.
func wholeHistory(t *testing.T, l *ledger, clk *clock, now time.Time) []string {
	t.Helper()
	ids := mixedHistory(t, l, clk, now)
	clk.Advance(time.Minute)
	l.expect(http.StatusCreated, "POST", "/projects", map[string]any{"id": "p-export", "aliases": []string{"exp"}, "description": "exported"})
	l.expect(http.StatusOK, "PUT", "/projects/p-export", map[string]any{"aliases": []string{"exp", "ex"}})
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "exp", "category": "decision", "key": "language", "value": "Go", "source": "review"})
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "p-export", "category": "decision", "key": "language", "value": "Go 1.26"})
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "p-export", "category": "status", "key": "phase", "value": "beta"})
	l.expect(http.StatusOK, "DELETE", "/project/state?project=p-export&category=status&key=phase", nil)
	l.expect(http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-1", "file_path": "notes/a.md", "title": "A",
		"chunks": []map[string]any{{"id": "doc-1-0", "content": "first chunk"}}})
	l.expect(http.StatusCreated, "POST", "/documents/doc-1/chunks", map[string]any{"chunks": []map[string]any{{"content": "second chunk"}}})
	l.mem(map[string]any{"memory_type": "knowledge", "content": "cites a chunk", "source_chunk_id": "doc-1-0"})
	l.mem(map[string]any{"memory_type": "knowledge", "content": "cites nothing that exists", "source_chunk_id": "nope"})
	l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"severity": "warning", "title": "Disk low", "context": map[string]any{"disk": "/"}})
	l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"severity": "critical", "title": "Down"})
	l.expect(http.StatusOK, "POST", "/admin/integrity/run", nil)
	l.expect(http.StatusOK, "POST", "/admin/nightly/run", map[string]any{"night": "2026-04-16"})
	return ids
}

// everyRead answers every read endpoint of the ledger, by path.
func (l *ledger) everyRead(memIDs []string) map[string]string {
	l.t.Helper()
	out := l.readViews(memIDs)
	for _, path := range []string{
		"/memory?limit=3", "/memory?status=candidate", "/memory?status=invalid&limit=500", "/memory?memory_type=preference",
		"/memory?project=p-rebuild&limit=2", "/admin/audit/recent?action=promoted", "/admin/audit/recent?actor=human-triage",
		"/admin/alerts", "/admin/alerts?severity=warning", "/projects", "/projects/p-export", "/projects/ex",
		"/project/state?project=p-export&include_invalid=true", "/project/state?project=atocore", "/project/state",
		"/project/state/audit?project=p-export", "/documents/doc-1", "/admin/integrity", "/admin/nightly", "/admin/dashboard",
	} {
		out[path] = string(l.expect(http.StatusOK, "GET", path, nil).Body)
	}
	var h map[string]any
	l.expect(http.StatusOK, "GET", "/health", nil).Decode(l.t, &h)
	delete(h, "alert_sinks") // what the sinks delivered since this process started
	delete(h, "search")      // how far the search index, written apart, has caught up
	data, _ := json.Marshal(h)
	out["/health"] = string(data)
	return out
}

func TestExportImport(t *testing.T) {
	now := time.Date(2026, 4, 16, 12, 0, 0, 0, time.UTC)
	clk := newClock(now)
	l := startLedger(t, withClock(clk.Now))
	memIDs := wholeHistory(t, l, clk, now)
	before := l.everyRead(memIDs)
	last := l.lastSeq()
	require.Greater(t, last, uint64(40))
	l.stop()

	dir := t.TempDir()
	file := filepath.Join(dir, "ledger.ndjson")
	code, out, errOut := runApp(t, "export", "--data", l.cfg.Data, "--out", file)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, errOut, fmt.Sprintf("export: %d events (positions 1 to %d)", last, last))
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	require.Len(t, lines, int(last)+2)
	require.Contains(t, lines[0], fmt.Sprintf(`"first_seq":1,"last_seq":%d`, last))
	require.Contains(t, lines[len(lines)-1], fmt.Sprintf(`"count":%d`, last))

	t.Run("to standard output, and a range", func(t *testing.T) {
		code, stdout, errOut := runApp(t, "export", "--data", l.cfg.Data)
		require.Equal(t, 0, code, errOut)
		// The same lines but the header's export time.
		got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		require.Equal(t, lines[1:len(lines)-1], got[1:len(got)-1])
		code, stdout, errOut = runApp(t, "export", "--data", l.cfg.Data, "--from", "5", "--to", "9")
		require.Equal(t, 0, code, errOut)
		got = strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		require.Equal(t, lines[5:10], got[1:6])
		require.Contains(t, got[6], `"count":5`)
		code, _, errOut = runApp(t, "export", "--data", l.cfg.Data, "--to", fmt.Sprint(last+1))
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "beyond the log's end")
	})

	t.Run("a changed or shortened file is refused and nothing is written", func(t *testing.T) {
		changed := []byte(strings.Replace(string(data), "prefers neovim", "prefers neovin", 1))
		require.NotEqual(t, data, changed)
		removed := strings.Join(append(append([]string{}, lines[:7]...), lines[8:]...), "\n") + "\n"
		for name, content := range map[string][]byte{"one byte changed": changed, "one line removed": []byte(removed),
			"cut short": data[:len(data)-len(lines[len(lines)-1])-1]} {
			bad := filepath.Join(t.TempDir(), "bad.ndjson")
			require.NoError(t, os.WriteFile(bad, content, 0o600))
			target := filepath.Join(t.TempDir(), "data")
			code, out, errOut := runApp(t, "import", "--data", target, bad)
			require.Equal(t, 1, code, "%s: stdout: %s\nstderr: %s", name, out, errOut)
			require.Contains(t, errOut, "not a whole export file", name)
			_, err := os.Stat(filepath.Join(target, "nats"))
			require.True(t, os.IsNotExist(err), "%s: nothing is written", name)
		}
	})

	target := filepath.Join(t.TempDir(), "imported")
	code, out, errOut = runApp(t, "import", "--data", target, file)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, "its trailer matches")
	require.Contains(t, out, fmt.Sprintf("import: %d events written", last))
	require.Contains(t, out, "done")

	code, out, errOut = runApp(t, "verify", "--data", target)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, fmt.Sprintf("ok, the live projections equal a rebuild of the log up to %d", last))

	t.Run("a second import into the same directory is refused", func(t *testing.T) {
		code, _, errOut := runApp(t, "import", "--data", target, file)
		require.Equal(t, 1, code)
		require.Contains(t, errOut, fmt.Sprintf("already holds %d events", last))
	})

	t.Run("the imported ledger answers as the exported one", func(t *testing.T) {
		// The log carries the tokens: the source's admin token opens the imported ledger.
		require.NoError(t, os.WriteFile(filepath.Join(target, "admin.token"), []byte(adminToken(t, l.cfg.Data)), 0o600))
		// And its key file: the tokens are recorded by their keyed digest.
		key, err := os.ReadFile(l.cfg.SubscriptionKeyPath())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(target, subscriptions.KeyFileName), key, 0o600))
		imported := startLedger(t, withClock(clk.Now), withConfig(func(c *app.Config) { c.Data = target }))
		after := imported.everyRead(memIDs)
		for path, body := range before {
			require.Equal(t, body, after[path], "GET %s", path)
		}
		// Its export holds the same lines, but the header's time (and so the trailer's sum).
		imported.stop()
		code, stdout, errOut := runApp(t, "export", "--data", target)
		require.Equal(t, 0, code, errOut)
		got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		require.Len(t, got, len(lines))
		for i := 1; i < len(lines)-1; i++ {
			require.True(t, lines[i] == got[i], "line %d differs:\n%s\n%s", i, lines[i], got[i])
		}
		// And it goes on writing after the imported log.
		imported.start()
		m := imported.mem(map[string]any{"memory_type": "knowledge", "content": "after the import"})
		require.Equal(t, last+1, m.Seq)
	})

	t.Run("from standard input", func(t *testing.T) {
		r, w, err := os.Pipe()
		require.NoError(t, err)
		go func() {
			w.Write(data)
			w.Close()
		}()
		old := os.Stdin
		os.Stdin = r
		defer func() { os.Stdin = old }()
		target := filepath.Join(t.TempDir(), "from-stdin")
		code, out, errOut := runApp(t, "import", "--data", target, "-")
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
		require.True(t, bytes.Contains([]byte(out), []byte("done")))
	})
}
