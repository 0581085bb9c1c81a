package tests

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// diskFull is an injected full disk: while it is on, the hook fails as a write to a full disk does.
type diskFull struct{ on atomic.Bool }

func (d *diskFull) err() error {
	if d.on.Load() {
		return fmt.Errorf("write: %w", syscall.ENOSPC)
	}
	return nil
}

func (d *diskFull) projectionsHook([]domain.Event) error { return d.err() }

// degradedHealth is /health while the service is degraded (503).
func (l *ledger) degradedHealth(t *testing.T) healthInfo {
	t.Helper()
	var h healthInfo
	res := l.expect(http.StatusServiceUnavailable, "GET", "/health", nil)
	res.Decode(t, &h)
	require.Equal(t, "degraded", h.Status, "%s", res.Body)
	return h
}

func (l *ledger) healthOK() bool {
	res, err := l.send("GET", "/health", nil)
	return err == nil && res.Status == http.StatusOK
}

// criticalAlerts are the critical alerts the service raised about failed writes.
func (l *ledger) writeFailureAlerts(t *testing.T) []map[string]any {
	t.Helper()
	var page struct {
		Alerts []map[string]any `json:"alerts"`
	}
	l.expect(http.StatusOK, "GET", "/admin/alerts?severity=critical", nil).Decode(t, &page)
	var out []map[string]any
	for _, a := range page.Alerts {
		if a["title"] == "Writes failed: the service is degraded" {
			out = append(out, a)
		}
	}
	return out
}

var positionInDetail = regexp.MustCompile(`recorded in the log at position (\d+)`)

// When the projections cannot be written (a full disk), the service degrades instead of dying:
// the write in flight, appended, answers 507 with its log position; later writes are refused
// with 507 before anything is appended; reads are served; /health says degraded and why; a
// critical alert is raised; once the disk takes writes again the runner applies what it held
// and the service resumes by itself.
func TestProjectionWriteFailureDegradesAndRecovers(t *testing.T) {
	disk := &diskFull{}
	l := startLedger(t, withProjectionsHook(disk.projectionsHook))
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "before the disk filled"})

	disk.on.Store(true)
	res := l.do("POST", "/memory", map[string]any{"memory_type": "knowledge", "content": "in flight"})
	p := requireProblem(t, res, http.StatusInsufficientStorage, "", "recorded in the log at position", "no space left on device")
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	match := positionInDetail.FindStringSubmatch(p.Detail)
	require.NotNil(t, match, p.Detail)
	inFlight, err := strconv.ParseUint(match[1], 10, 64)
	require.NoError(t, err)
	require.Greater(t, inFlight, m.Seq)

	res = l.do("PUT", "/memory/"+m.ID, map[string]any{"content": "refused"})
	requireProblem(t, res, http.StatusInsufficientStorage, "", "nothing was written", "no space left on device")
	res = l.do("POST", "/projects", map[string]any{"id": "p-degraded", "description": "refused too"})
	requireProblem(t, res, http.StatusInsufficientStorage, "", "nothing was written")

	h := l.degradedHealth(t)
	require.Contains(t, h.Error, "the projections cannot be written")
	require.Contains(t, h.Error, "no space left on device")
	res = l.expect(http.StatusOK, "GET", "/memory/"+m.ID, nil)
	require.Equal(t, "before the disk filled", res.JSON(t)["content"])
	require.Equal(t, m.Seq, position(t, res))
	l.expect(http.StatusOK, "GET", "/memory", nil)
	l.expect(http.StatusOK, "GET", "/memory/"+m.ID+"/audit", nil)

	disk.on.Store(false)
	eventually(t, l.healthOK, "the service resumes by itself")
	res = l.expect(http.StatusOK, "GET", "/memory?min_seq="+strconv.FormatUint(inFlight, 10), nil)
	var page listPage
	res.Decode(t, &page)
	require.Len(t, page.Memories, 2, "the write in flight is applied: %s", res.Body)
	require.Len(t, l.auditOf(m.ID), 1, "the refused update was never written")
	l.mem(map[string]any{"memory_type": "knowledge", "content": "after"})
	ok := false
	for range 100 {
		if ok = len(l.writeFailureAlerts(t)) >= 1; ok {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.True(t, ok, "%s\n%s", l.do("GET", "/admin/alerts", nil).Body, l.do("GET", "/health", nil).Body)
	alerts := l.writeFailureAlerts(t)
	require.Len(t, alerts, 1)
	require.Contains(t, alerts[0]["message"], "no space left on device")
}

// When the log refuses appends (its disk is full), writes answer 507 with a problem that says
// so, reads are served, /health says degraded and why, and the first append the log stores
// again (the critical alert about it, raised once space allows) resumes the service.
func TestLogAppendFailureDegradesAndRecovers(t *testing.T) {
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "stored"})
	disk := &diskFull{}
	disk.on.Store(true)
	l.Main.Store.SetAppendHook(disk.err)

	res := l.do("POST", "/memory", map[string]any{"memory_type": "knowledge", "content": "no room"})
	requireProblem(t, res, http.StatusInsufficientStorage, "", "disk is full")
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	requireProblem(t, l.do("POST", "/memory/"+m.ID+"/reinforce", nil), http.StatusInsufficientStorage, "", "disk is full")
	h := l.degradedHealth(t)
	require.Contains(t, h.Error, "the log refuses appends")
	require.Contains(t, h.Error, "no space left on device")
	res = l.expect(http.StatusOK, "GET", "/memory/"+m.ID, nil)
	require.Equal(t, "stored", res.JSON(t)["content"])
	require.Empty(t, l.writeFailureAlerts(t), "no alert can be stored while the log refuses appends")

	disk.on.Store(false)
	eventually(t, l.healthOK, "the service resumes by itself")
	eventually(t, func() bool { return len(l.writeFailureAlerts(t)) == 1 }, "the critical alert, once space allows")
	alerts := l.writeFailureAlerts(t)
	require.Contains(t, alerts[0]["message"], "the log refuses appends")
	l.mem(map[string]any{"memory_type": "knowledge", "content": "stored again"})
	l.expect(http.StatusOK, "POST", "/memory/"+m.ID+"/reinforce", nil)
	require.Len(t, l.writeFailureAlerts(t), 1)
}

// The MCP resource updates pause while the projections cannot be written and resume with the
// service: the change made while the disk was full is told once it is applied, and so are the
// changes after it.
func TestMCPResourceUpdatesResumeAfterTheProjectionsRecover(t *testing.T) {
	disk := &diskFull{}
	var log syncBuffer
	l := startLedger(t, withProjectionsHook(disk.projectionsHook), withLog(&log))
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "watched through a full disk"})
	uri := "memory://" + m.ID
	c := mcpHTTP(t, l, nil)
	require.NoError(t, c.Subscribe(context.Background(), &mcp.SubscribeParams{URI: uri}))
	changeUntilHeard(t, c, uri, func() { l.expect(http.StatusOK, "POST", "/memory/"+m.ID+"/reinforce", map[string]any{}) })
	time.Sleep(200 * time.Millisecond) // the updates of the changes made so far, all told
	c.forget()

	disk.on.Store(true)
	requireProblem(t, l.do("POST", "/memory/"+m.ID+"/reinforce", map[string]any{}), http.StatusInsufficientStorage, "", "recorded in the log at position")
	l.degradedHealth(t)
	// Long enough for the follow to meet the failure and wait to take it up again.
	time.Sleep(300 * time.Millisecond)
	require.False(t, c.heard(uri), "nothing is told of a change the projections have not applied")

	// Long enough for several retries (250 ms, then 500 ms): the log said it once.
	time.Sleep(time.Second)
	require.Equal(t, 1, strings.Count(log.String(), "resource updates paused"), "the first failure is logged, the retries within a minute are not")

	disk.on.Store(false)
	eventually(t, l.healthOK, "the service resumes by itself")
	eventually(t, func() bool { return c.heard(uri) }, "the change made while the disk was full is told once applied")
	c.forget()
	changeUntilHeard(t, c, uri, func() { l.expect(http.StatusOK, "POST", "/memory/"+m.ID+"/reinforce", map[string]any{}) })
	require.Equal(t, 1, strings.Count(log.String(), "resource updates paused"))
	require.Equal(t, 1, strings.Count(log.String(), "resource updates taken up again"), "the recovery is logged once")
}
