package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// fillLedger creates n memories through the API with a few clients and returns their ids.
func fillLedger(t *testing.T, l *ledger, n int) []string {
	t.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				res, err := l.send("POST", "/memory", map[string]any{"memory_type": "knowledge",
					"content": fmt.Sprintf("fact %d: the log is the truth and every projection is derived from it", i)})
				if err != nil || res.Status != http.StatusCreated {
					errs <- fmt.Errorf("create %d: %v %d %s", i, err, res.Status, res.Body)
					return
				}
				var m struct{ ID string }
				if err := json.Unmarshal(res.Body, &m); err != nil {
					errs <- err
					return
				}
				ids[i] = m.ID
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return ids
}

// streamDir is the directory of the embedded server's files of the log.
func streamDir(data string) string {
	return filepath.Join(data, "nats", "jetstream", "$G", "streams", "LEDGER", "msgs")
}

// lastBlock is the path of the log's last message block.
func lastBlock(t *testing.T, data string) string {
	t.Helper()
	blks, err := filepath.Glob(filepath.Join(streamDir(data), "*.blk"))
	require.NoError(t, err)
	require.NotEmpty(t, blks)
	return blks[len(blks)-1]
}

// openErr starts the service on cfg and returns why it refused, failing if it started.
func openErr(t *testing.T, cfg app.Config) error {
	t.Helper()
	m := app.NewMain(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	err := m.Open(context.Background())
	if err == nil {
		m.Close()
		t.Fatal("serve started on a damaged log")
	}
	return err
}

// refusedAtOrAfterStart starts the service on l's damaged log and returns why it refused. A
// loss the start's check finds (the log's counts, its tail, the events past what an earlier
// run read back) refuses the start itself. One among the events an earlier run read back whole
// is found by the check in the background: the service then goes degraded, refuses reads and
// writes with the report, and the next start checks the whole log and refuses it.
func refusedAtOrAfterStart(t *testing.T, l *ledger) (err error, afterStart bool) {
	t.Helper()
	m := app.NewMain(l.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := m.Open(context.Background()); err != nil {
		return err, false
	}
	l.Main, l.URL = m, "http://"+m.Addr()
	registerLedger(l.URL, l.cfg.Data)
	require.Eventually(t, func() bool {
		res := l.do("GET", "/health", nil)
		return res.Status == http.StatusServiceUnavailable && bytes.Contains(res.Body, []byte("acknowledged events"))
	}, 60*time.Second, 20*time.Millisecond, "the check in the background finds the damage and /health says so")
	for _, req := range []struct{ method, path string }{{"GET", "/memory"}, {"POST", "/memory"}, {"GET", "/admin/audit/recent"}} {
		res := l.do(req.method, req.path, map[string]any{"memory_type": "knowledge", "content": "on a damaged log"})
		require.Equal(t, http.StatusServiceUnavailable, res.Status, "%s %s: %s", req.method, req.path, res.Body)
		require.Contains(t, string(res.Body), "acknowledged events", "%s %s names the loss", req.method, req.path)
		require.Contains(t, string(res.Body), "--accept-log-loss", "%s %s says what to do", req.method, req.path)
	}
	anon := l.do("GET", "/memory", nil, noToken, "1")
	require.Equal(t, http.StatusServiceUnavailable, anon.Status)
	require.Contains(t, string(anon.Body), "found damage in the log")
	require.NotContains(t, string(anon.Body), "acknowledged events", "the report is for a reader's eyes only")
	l.stop()
	return openErr(t, l.cfg), true
}

// Each kind of damage to the stored log that loses acknowledged events is found at start (or,
// among the events an earlier run read back whole, by the check in the background after the
// start), by verify and by rebuild: serve refuses naming the missing positions and what to do,
// verify exits 1 promptly, rebuild refuses to shrink the projections; serve --accept-log-loss
// records the decision, raises a critical alert and serves a rebuild of what the log holds.
func TestLogDamageIsRefused(t *testing.T) {
	// Whether each damage is found by the start's check or only by the one in the
	// background after it: a byte flipped in an event the last run read back is old.
	inBackground := map[string]bool{"flipped byte": true}
	damages := map[string]func(t *testing.T, data string){
		"truncated block": func(t *testing.T, data string) {
			blk := lastBlock(t, data)
			st, err := os.Stat(blk)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(blk, st.Size()/2))
		},
		"flipped byte": func(t *testing.T, data string) {
			// A byte of an event's payload, so that the message's checksum no longer holds.
			blk := lastBlock(t, data)
			b, err := os.ReadFile(blk)
			require.NoError(t, err)
			at := bytes.Index(b, []byte("fact 150:"))
			require.Positive(t, at)
			b[at+2] ^= 0xff
			require.NoError(t, os.WriteFile(blk, b, 0o644))
		},
		"deleted block": func(t *testing.T, data string) {
			require.NoError(t, os.Remove(lastBlock(t, data)))
		},
		"truncated block, index.db missing": func(t *testing.T, data string) {
			blk := lastBlock(t, data)
			st, err := os.Stat(blk)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(blk, st.Size()*2/3))
			require.NoError(t, os.Remove(filepath.Join(streamDir(data), "index.db")))
		},
	}
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			l := startLedger(t)
			ids := fillLedger(t, l, 300)
			before := l.lastSeq()
			l.stop()
			damage(t, l.cfg.Data)
			cpsBefore := fileCheckpoints(t, l.cfg.Data)

			err, afterStart := refusedAtOrAfterStart(t, l)
			require.Equal(t, inBackground[name], afterStart, "found after the start")
			require.ErrorContains(t, err, "acknowledged events")
			require.ErrorContains(t, err, "positions ")
			require.ErrorContains(t, err, fmt.Sprint(before), "the last position the projections applied is named")
			require.ErrorContains(t, err, "still hold the lost events' effects")
			require.ErrorContains(t, err, "restore")
			require.ErrorContains(t, err, "--accept-log-loss")

			code, out, _ := runApp(t, "verify", "--data", l.cfg.Data, "--log-format", "json")
			require.Equal(t, 1, code, out)
			require.Contains(t, out, "LOG DAMAGED")

			code, _, errOut := runApp(t, "rebuild", "--data", l.cfg.Data, "--log-format", "json")
			require.NotEqual(t, 0, code)
			require.Contains(t, errOut, "refusing to rebuild")
			require.Equal(t, cpsBefore, fileCheckpoints(t, l.cfg.Data), "neither the refused start nor the refused rebuild touched the projections")
			kept, _ := filepath.Glob(l.cfg.ProjectionsPath() + ".*")
			kept = slices.DeleteFunc(kept, func(p string) bool { return strings.HasSuffix(p, ".closed") }) // the clean stop's stamp
			require.Empty(t, kept, "nothing set aside or swapped")

			l.cfg.AcceptLogLoss = true
			l.start()
			var alerts []any
			eventually(t, func() bool {
				alerts = l.expect(http.StatusOK, "GET", "/admin/alerts?severity=critical", nil).JSON(t)["alerts"].([]any)
				return len(alerts) == 1
			}, "the critical alert is raised")
			require.Contains(t, alerts[0].(map[string]any)["title"], "acknowledged events were lost from the log")
			lost := 0
			for _, id := range ids {
				if l.do("GET", "/memory/"+id, nil).Status == http.StatusNotFound {
					lost++
				}
			}
			require.Greater(t, lost, 0, "the service serves what the log holds")
			aside, _ := filepath.Glob(l.cfg.ProjectionsPath() + ".log-loss-*")
			require.Len(t, aside, 1, "the projections that held the lost events are kept aside")
			l.create(map[string]any{"memory_type": "knowledge", "content": "after the accepted loss"})
			l.stop()

			l.cfg.AcceptLogLoss = false
			l.start() // the accepted loss is not reported again
			l.stop()
			code, out, _ = runApp(t, "verify", "--data", l.cfg.Data, "--log-format", "json")
			require.Equal(t, 0, code, out)
			require.Contains(t, out, "verify: ok")
		})
	}
}

// Projections that hold events the log does not (the log gone, or another one put in its
// place) are not thrown away: serve refuses until told to accept the loss.
func TestProjectionsAheadOfTheLogAreRefused(t *testing.T) {
	l := startLedger(t)
	for i := range 3 {
		l.create(map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("fact %d", i)})
	}
	l.stop()
	require.NoError(t, os.RemoveAll(filepath.Join(l.cfg.Data, "nats"))) // the log is gone
	err := openErr(t, l.cfg)
	require.ErrorContains(t, err, "positions 1-4 are missing") // the first start's admin token and the three facts
	require.ErrorContains(t, err, "the stream holds no event at all")
	aside, _ := filepath.Glob(filepath.Join(l.cfg.Data, "projections.db.*-*"))
	require.Empty(t, aside, "nothing set aside without the operator's decision")

	l.cfg.AcceptLogLoss = true
	l.start()
	require.Len(t, l.do("GET", "/memory", nil).JSON(t)["memories"], 0)
	m := l.create(map[string]any{"memory_type": "knowledge", "content": "after the loss"})
	require.Equal(t, 200, l.do("GET", "/memory/"+m["id"].(string), nil).Status)
	aside, _ = filepath.Glob(filepath.Join(l.cfg.Data, "projections.db.log-loss-*"))
	require.Len(t, aside, 1, "the old projections are kept aside")
}

// A second process on a data directory in use is refused before it touches anything, whatever
// the projections' marker says.
func TestSecondServeIsRefused(t *testing.T) {
	l := startLedger(t)
	m := l.create(map[string]any{"memory_type": "knowledge", "content": "held by the first"})
	// A marker the second start cannot match with this boot: without the lock, it would set
	// the running service's projections aside.
	require.NoError(t, os.WriteFile(l.cfg.ProjectionsPath()+".open", []byte("not a boot id\n"), 0o644))
	cfg := l.cfg
	cfg.Addr = "127.0.0.1:0"
	second := app.NewMain(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	err := second.Open(context.Background())
	require.ErrorContains(t, err, "in use by another memledger process")
	for _, cmd := range []string{"rebuild", "verify"} {
		code, _, errOut := runApp(t, cmd, "--data", l.cfg.Data, "--log-format", "json")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "in use by another memledger process", cmd)
	}
	_, err = os.Stat(l.cfg.ProjectionsPath())
	require.NoError(t, err, "the running service's projections are in place")
	aside, _ := filepath.Glob(l.cfg.ProjectionsPath() + ".*-*")
	require.Empty(t, aside)
	l.get(m["id"].(string))
	l.create(map[string]any{"memory_type": "knowledge", "content": "the first still writes"})
}

// fileLogChecked is how far the projection file at dir records the log as read back whole.
func fileLogChecked(t *testing.T, dir string) uint64 {
	t.Helper()
	db, err := projections.Open(filepath.Join(dir, "projections.db"), false)
	require.NoError(t, err)
	defer db.Close()
	lc, err := db.LogCheck()
	require.NoError(t, err)
	require.Empty(t, lc.Damage)
	return lc.Checked
}

// serve records how far it read the log back whole (the start's check, then every event the
// projections' runner is delivered), so that the next start reads the log only past there;
// damage in the part before it is found by the check in the background (TestLogDamageIsRefused).
func TestLogCheckRecordsHowFarTheLogWasRead(t *testing.T) {
	l := startLedger(t)
	fillLedger(t, l, 40)
	last := l.lastSeq()
	eventually(t, func() bool { return l.Main.Store.Checked() >= last }, "the events the runner is delivered are checked")
	l.stop()
	require.Equal(t, last, fileLogChecked(t, l.cfg.Data), "recorded at the clean stop")

	l.start()
	fillLedger(t, l, 10)
	last = l.lastSeq()
	eventually(t, func() bool {
		lc, err := l.Main.DB.LogCheck()
		return err == nil && lc.Checked >= last
	}, "recorded while serving too")
	l.stop()
	require.Equal(t, last, fileLogChecked(t, l.cfg.Data))
}
