package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// runApp runs a memledger subcommand in-process and returns its exit status and output. It
// fails the test if the command does not return within a minute.
func runApp(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	return runAppWithin(t, time.Minute, args...)
}

// runAppWithin is runApp with another limit than a minute.
func runAppWithin(t testing.TB, limit time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- app.Run(ctx, args, &out, &errOut) }()
	select {
	case code := <-done:
		return code, out.String(), errOut.String()
	case <-time.After(limit):
		t.Fatalf("memledger %v hangs", args)
		return 0, "", ""
	}
}

// mixedHistory writes a history with every kind of mutation, both automatic jobs included,
// and returns the ids of its memories.
func mixedHistory(t *testing.T, l *ledger, clk *clock, now time.Time) []string {
	t.Helper()
	var all []string
	add := func(m domain.Memory) domain.Memory { all = append(all, m.ID); return m }
	cand := func(content string, extra ...any) domain.Memory {
		body := map[string]any{"memory_type": "knowledge", "content": content, "status": "candidate", "project": "p-rebuild"}
		for i := 0; i+1 < len(extra); i += 2 {
			body[extra[i].(string)] = extra[i+1]
		}
		return add(l.mem(body, "X-Actor", "extractor"))
	}
	act := func(content string) domain.Memory {
		return add(l.mem(map[string]any{"memory_type": "preference", "content": content,
			"domain_tags": []string{"Editor", "editor", " Tools "}, "valid_until": "2027-01-01T00:00:00+02:00"}))
	}

	// Three weeks ago: candidates that will expire, and one that will not.
	clk.Set(now.Add(-21 * 24 * time.Hour))
	stale := cand("stale candidate")
	stale2 := cand("another stale candidate", "source_chunk_id", "chunk-1")
	oldReinforced := cand("old but reinforced")
	l.act("POST", "/memory/"+oldReinforced.ID+"/reinforce", nil, "X-Actor", "reinforcement")

	// Now.
	clk.Set(now)
	a1 := act("prefers vim")
	a2 := act("prefers tabs")
	a3 := act("uses fish")
	l.act("PUT", "/memory/"+a1.ID, map[string]any{"content": "prefers neovim", "confidence": 0.8, "valid_until": nil})
	l.act("PUT", "/memory/"+a2.ID, map[string]any{"memory_type": "adaptation", "domain_tags": []string{}})
	l.act("POST", "/memory/"+a3.ID+"/supersede", map[string]any{"reason": "switched", "superseded_by": a1.ID})
	l.act("POST", "/memory/"+a2.ID+"/invalidate", map[string]any{"reason": "no longer true"})
	a4 := act("likes dark themes")
	l.act("DELETE", "/memory/"+a4.ID, nil)

	c1 := cand("promoted by hand")
	l.act("POST", "/memory/"+c1.ID+"/promote", map[string]any{"note": "checked"}, "X-Actor", "human-triage")
	c2 := cand("rejected by hand")
	l.act("POST", "/memory/"+c2.ID+"/reject", nil, "X-Actor", "human-triage")
	c3 := cand("promoted through update")
	l.act("PUT", "/memory/"+c3.ID, map[string]any{"status": "active", "content": "promoted through an update"})
	c4 := cand("auto-promoted", "confidence", 0.6)
	for range 3 {
		clk.Advance(time.Second)
		l.act("POST", "/memory/"+c4.ID+"/reinforce", nil, "X-Actor", "reinforcement")
	}
	cand("stays a candidate")

	res := l.expect(200, "POST", "/admin/memory/auto-promote", nil)
	require.JSONEq(t, fmt.Sprintf(`{"promoted": [%q]}`, c4.ID), string(res.Body))
	res = l.expect(200, "POST", "/admin/memory/expire-candidates", nil)
	require.JSONEq(t, fmt.Sprintf(`{"expired": [%q, %q]}`, stale.ID, stale2.ID), string(res.Body))
	require.Equal(t, domain.StatusCandidate, l.get(oldReinforced.ID).Status)
	// The rejection was a mistake: an admin reverts it, and the candidate waits again.
	res = l.expect(200, "POST", "/admin/revert", map[string]any{"actor": "human-triage", "memory_ids": []string{c2.ID},
		"dry_run": false, "note": "rejected by mistake"})
	require.Contains(t, string(res.Body), `"reverted":1`)
	require.Equal(t, domain.StatusCandidate, l.get(c2.ID).Status)
	return all
}

func TestRebuildEqualsLive(t *testing.T) {
	now := time.Date(2026, 4, 16, 12, 0, 0, 0, time.UTC)
	clk := newClock(now)
	l := startLedger(t, withClock(clk.Now))
	dir := l.cfg.Data
	memIDs := mixedHistory(t, l, clk, now)
	before := l.readViews(memIDs)
	h := l.health()
	require.Equal(t, h.LastSeq, h.Projections["memories"])
	// Every action is in the history (but an importer's reconciliation, which no API call writes).
	for _, a := range domain.Actions {
		if a == domain.ActionReconciled {
			continue
		}
		require.NotEmpty(t, l.recent(url.Values{"action": {string(a)}}), "no %s entry", a)
	}

	t.Run("verify and rebuild refuse while serve runs", func(t *testing.T) {
		for _, cmd := range []string{"verify", "rebuild"} {
			start := time.Now()
			code, out, errOut := runApp(t, cmd, "--data", dir)
			require.Equal(t, 1, code, "stdout: %s\nstderr: %s", out, errOut)
			require.Contains(t, errOut, "in use by another memledger process", "%s says why", cmd)
			require.Contains(t, errOut, "memledger serve, pid")
			require.Less(t, time.Since(start), 15*time.Second, "%s gives up rather than hanging", cmd)
		}
		// The running ledger is not disturbed.
		require.Equal(t, h, l.health())
		require.Equal(t, before, l.readViews(memIDs))
	})

	l.stop()

	t.Run("verify ok", func(t *testing.T) {
		code, out, errOut := runApp(t, "verify", "--data", dir)
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
		require.Contains(t, out, "ok")
		require.Contains(t, out, fmt.Sprint(h.LastSeq))
	})

	t.Run("rebuild", func(t *testing.T) {
		code, out, errOut := runApp(t, "rebuild", "--data", dir)
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
		require.Contains(t, out, fmt.Sprintf("rebuild: %d/%d events", h.LastSeq, h.LastSeq), "progress")
		require.Contains(t, out, "done")
		require.Contains(t, out, filepath.Join(dir, "projections.db"))
		require.Equal(t, h.LastSeq, fileCheckpoints(t, dir)["memories"])

		code, out, errOut = runApp(t, "verify", "--data", dir)
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	})

	t.Run("rebuilt views equal the live ones", func(t *testing.T) {
		l.start()
		require.Equal(t, h, l.health())
		after := l.readViews(memIDs)
		for path, body := range before {
			require.Equal(t, body, after[path], "GET %s", path)
		}
		require.Equal(t, before, after)
		// Filtered reads use indexes that were rebuilt too.
		for _, q := range []url.Values{
			{"status": {"candidate"}}, {"status": {"invalid"}}, {"memory_type": {"adaptation"}},
			{"project": {"p-rebuild"}, "limit": {"2"}},
		} {
			require.NotEmpty(t, l.listAll(q), "query %s", q.Encode())
		}
		for _, q := range []url.Values{{"action": {"expired"}}, {"actor": {"human-triage"}}} {
			require.NotEmpty(t, l.recent(q))
		}
		l.stop()
	})

	t.Run("verify finds a changed memory", func(t *testing.T) {
		id := memIDs[3]
		corrupt(t, dir, func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("memories"))
			v := b.Get([]byte(id))
			require.NotNil(t, v)
			changed := bytes.Replace(v, []byte(`"prefers neovim"`), []byte(`"prefers emacs"`), 1)
			require.NotEqual(t, v, changed)
			return b.Put([]byte(id), changed)
		})
		code, out, errOut := runApp(t, "verify", "--data", dir)
		require.Equal(t, 1, code, "stdout: %s\nstderr: %s", out, errOut)
		require.Contains(t, out, "DRIFT")
		line := diffLine(t, out, id)
		require.Contains(t, line, "memories", "names the bucket")
		require.Contains(t, line, "prefers emacs")
		require.Contains(t, line, "prefers neovim")
		require.Len(t, diffLines(out), 1, "only that difference:\n%s", out)
	})

	t.Run("rebuild repairs it", func(t *testing.T) {
		code, out, errOut := runApp(t, "rebuild", "--data", dir)
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
		code, out, errOut = runApp(t, "verify", "--data", dir)
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	})

	t.Run("verify finds a missing audit entry", func(t *testing.T) {
		var deleted uint64
		corrupt(t, dir, func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("audit"))
			k, _ := b.Cursor().Seek(binary.BigEndian.AppendUint64(nil, 5))
			require.NotNil(t, k)
			deleted = binary.BigEndian.Uint64(k)
			return b.Delete(k)
		})
		code, out, errOut := runApp(t, "verify", "--data", dir)
		require.Equal(t, 1, code, "stdout: %s\nstderr: %s", out, errOut)
		lines := diffLines(out)
		require.Len(t, lines, 1, "only that difference:\n%s", out)
		require.Contains(t, lines[0], "audit", "names the bucket")
		require.Contains(t, lines[0], "missing in the live projections")
		require.Contains(t, lines[0], fmt.Sprintf(`"seq":%d`, deleted), "the rebuilt entry identifies the key")

		// The key itself is a binary log position (8 bytes, big-endian); a readable report
		// shows it as that position rather than as escaped bytes.
		t.Run("the key reads as a log position", func(t *testing.T) {
			require.NotContains(t, lines[0], `\x00`, "the key is printed as raw bytes:\n%s", lines[0])
			require.Contains(t, lines[0], fmt.Sprint(deleted))
		})
	})

	t.Run("verify names projections written by another version", func(t *testing.T) {
		corrupt(t, dir, func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("projection_versions")).Put([]byte("integrity"), binary.BigEndian.AppendUint64(nil, 2))
		})
		code, out, errOut := runApp(t, "verify", "--data", dir)
		require.Equal(t, 1, code, "stdout: %s\nstderr: %s", out, errOut)
		require.Contains(t, errOut, fmt.Sprintf("integrity (stored at version 2, this program writes version %d)", projections.Integrity{}.Version()))
		require.Contains(t, errOut, "memledger rebuild")
		require.NotContains(t, out, "DRIFT", "no byte-level report of a shape that is known to differ")
	})

	t.Run("the ledger serves again after a last rebuild", func(t *testing.T) {
		code, out, errOut := runApp(t, "rebuild", "--data", dir)
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
		l.start()
		require.Equal(t, before, l.readViews(memIDs))
		m := l.mem(map[string]any{"memory_type": "knowledge", "content": "after rebuild"})
		require.Equal(t, h.LastSeq+1, m.Seq)
	})
}

// corrupt changes the projection file in dir with fn; the ledger must be stopped.
func corrupt(t *testing.T, dir string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "projections.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(fn))
	require.NoError(t, db.Close())
}

// diffLines are the indented difference lines of verify's output.
func diffLines(out string) []string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "  ") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines
}

func diffLine(t *testing.T, out, key string) string {
	t.Helper()
	for _, line := range diffLines(out) {
		if strings.Contains(line, key) {
			return line
		}
	}
	t.Fatalf("no difference names %s:\n%s", key, out)
	return ""
}
