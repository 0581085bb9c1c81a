package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	commands "github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/handlers/sinks"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// The helpers of the alert tests are prefixed with alert so that they do not collide with
// the helpers other test files of the package define.

// alertsView is the answer of GET /admin/alerts.
type alertsView struct {
	Alerts           []domain.Alert           `json:"alerts"`
	Last             map[string]*domain.Alert `json:"last"`
	DeliveryFailures struct {
		Count  int                           `json:"count"`
		Recent []projections.DeliveryFailure `json:"recent"`
	} `json:"delivery_failures"`
}

// alertHealth is the alert part of GET /health.
type alertHealth struct {
	Status                string                  `json:"status"`
	AlertSinks            map[string]sinks.Status `json:"alert_sinks"`
	AlertDeliveryFailures int                     `json:"alert_delivery_failures"`
}

// alertRaise raises an alert over HTTP, requires 201 and returns the alert.
func alertRaise(t *testing.T, l *ledger, body map[string]any, headers ...string) domain.Alert {
	t.Helper()
	res := l.do("POST", "/admin/alerts", body, headers...)
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	var a domain.Alert
	res.Decode(t, &a)
	require.NotEmpty(t, a.ID)
	require.NotZero(t, a.Seq)
	return a
}

// alertList returns GET /admin/alerts with the query q ("" for none).
func alertList(t *testing.T, l *ledger, q string) alertsView {
	t.Helper()
	path := "/admin/alerts"
	if q != "" {
		path += "?" + q
	}
	res := l.do("GET", path, nil)
	require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
	var v alertsView
	res.Decode(t, &v)
	return v
}

func alertHealthOf(t *testing.T, l *ledger) alertHealth {
	t.Helper()
	res := l.do("GET", "/health", nil)
	require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
	var h alertHealth
	res.Decode(t, &h)
	return h
}

func alertIDs(as []domain.Alert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

// alertLogLines returns the lines of the alert log file (none when it does not exist).
func alertLogLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	if len(data) == 0 {
		return nil
	}
	require.True(t, bytes.HasSuffix(data, []byte("\n")), "the alert log ends in a partial line: %q", data)
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// alertWaitLines waits until the alert log holds n lines and returns them.
func alertWaitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	var lines []string
	require.Eventually(t, func() bool {
		lines = alertLogLines(t, path)
		return len(lines) >= n
	}, 15*time.Second, 10*time.Millisecond, "the alert log %s should reach %d lines", path, n)
	require.Len(t, lines, n, "lines: %q", lines)
	return lines
}

// alertWaitSink waits until sink name has delivered n alerts since the ledger started (the
// count moves once the sink has acknowledged the alert, just after it wrote it).
func alertWaitSink(t *testing.T, l *ledger, name string, n uint64) {
	t.Helper()
	eventually(t, func() bool { return alertHealthOf(t, l).AlertSinks[name].Delivered >= n },
		fmt.Sprintf("sink %s should count %d deliveries", name, n))
	require.Equal(t, n, alertHealthOf(t, l).AlertSinks[name].Delivered, "sink %s", name)
}

// alertStamp is the time of an alert as its log line shows it.
func alertStamp(a domain.Alert) string { return a.Timestamp.UTC().Format("2006-01-02T15:04:05Z") }

// alertRequireProblem checks res is a problem answer with status, naming field (none when
// field is empty), with a detail that contains each of details (case-insensitive).
func alertRequireProblem(t *testing.T, res response, status int, field string, details ...string) {
	t.Helper()
	p := requireProblem(t, res, status, field, details...)
	require.Equal(t, field, p.Field, "detail: %s", p.Detail)
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAlertRaiseAndLogFileLine(t *testing.T) {
	l := startLedger(t)
	path := filepath.Join(l.cfg.Data, "alerts.log") // the default alert log
	require.Equal(t, path, l.cfg.AlertLogPath())

	a := alertRaise(t, l, map[string]any{"severity": "warning", "title": "Disk almost full",
		"message": "93% used", "context": map[string]any{"used_pct": 93, "disk": "/data"}})
	require.Equal(t, domain.SeverityWarning, a.Severity)
	require.Equal(t, "Disk almost full", a.Title)
	require.Equal(t, "93% used", a.Message)
	require.Equal(t, map[string]any{"used_pct": float64(93), "disk": "/data"}, a.Context)
	require.Equal(t, principal, a.Actor, "the actor is the token")
	require.WithinDuration(t, time.Now(), a.Timestamp, time.Minute)

	// The exact line format, computed by hand: the context is its JSON, keys sorted.
	want := fmt.Sprintf(`[%s] [WARNING] Disk almost full: 93%% used {"disk":"/data","used_pct":93}`, alertStamp(a))
	lines := alertWaitLines(t, path, 1)
	require.Equal(t, want, lines[0])

	// A context whose JSON is over 500 characters is cut at exactly 500.
	blob := strings.Repeat("x", 600)
	b := alertRaise(t, l, map[string]any{"severity": "critical", "title": "Big context", "message": "m",
		"context": map[string]any{"blob": blob}})
	full := `{"blob":"` + blob + `"}`
	require.Greater(t, len(full), 500)
	lines = alertWaitLines(t, path, 2)
	prefix := fmt.Sprintf("[%s] [CRITICAL] Big context: m ", alertStamp(b))
	require.Equal(t, prefix+full[:500], lines[1])
	require.Len(t, strings.TrimPrefix(lines[1], prefix), 500)

	// No context: no trailing JSON. And every line is written once: a third alert is the third
	// line (the sink delivers in log order, so a second copy of an earlier line would come first).
	c := alertRaise(t, l, map[string]any{"severity": "info", "title": "Plain", "message": "no context"})
	require.Empty(t, c.Context)
	lines = alertWaitLines(t, path, 3)
	require.Equal(t, []string{want, prefix + full[:500], fmt.Sprintf("[%s] [INFO] Plain: no context", alertStamp(c))}, lines)

	alertWaitSink(t, l, "file", 3)
	h := alertHealthOf(t, l)
	require.Empty(t, h.AlertSinks["file"].LastError)
	require.Contains(t, h.AlertSinks, "log")
	require.NotContains(t, h.AlertSinks, "webhook", "no webhook is configured")
}

func TestAlertUnknownSeverityIsInfo(t *testing.T) {
	l := startLedger(t)
	a := alertRaise(t, l, map[string]any{"severity": "bogus", "title": "Odd", "message": "m",
		"context": map[string]any{"k": "v"}})
	require.Equal(t, domain.SeverityInfo, a.Severity)
	require.Equal(t, map[string]any{"k": "v", "original_severity": "bogus"}, a.Context)

	v := alertList(t, l, "")
	require.Len(t, v.Alerts, 1)
	require.Equal(t, domain.SeverityInfo, v.Alerts[0].Severity)
	require.Equal(t, "bogus", v.Alerts[0].Context["original_severity"])
	require.NotNil(t, v.Last["info"])
	require.Equal(t, a.ID, v.Last["info"].ID)

	lines := alertWaitLines(t, l.cfg.AlertLogPath(), 1)
	require.Equal(t, fmt.Sprintf(`[%s] [INFO] Odd: m {"k":"v","original_severity":"bogus"}`, alertStamp(a)), lines[0])

	// A known severity in another case is that severity, with nothing recorded.
	b := alertRaise(t, l, map[string]any{"severity": "WARNING", "title": "Upper"})
	require.Equal(t, domain.SeverityWarning, b.Severity)
	require.NotContains(t, b.Context, "original_severity")

	// The Go function behaves the same.
	c, err := l.Main.Ledger.RaiseAlert(context.Background(), commands.Caller{Actor: "go-test"},
		domain.RaiseAlert{Severity: "urgent", Title: "From Go"})
	require.NoError(t, err)
	require.Equal(t, domain.SeverityInfo, c.Severity)
	require.Equal(t, map[string]any{"original_severity": "urgent"}, c.Context)
	require.Equal(t, "go-test", c.Actor)
	eventually(t, func() bool {
		v := alertList(t, l, "")
		return len(v.Alerts) == 3 && v.Alerts[0].ID == c.ID
	}, "the alert raised from Go should be listed")
	lines = alertWaitLines(t, l.cfg.AlertLogPath(), 3)
	require.Equal(t, fmt.Sprintf(`[%s] [INFO] From Go:  {"original_severity":"urgent"}`, alertStamp(c)), lines[2])

	// The Go function validates as the API does.
	_, err = l.Main.Ledger.RaiseAlert(context.Background(), commands.Caller{Actor: "go-test"}, domain.RaiseAlert{Severity: "info", Title: " "})
	require.ErrorIs(t, err, domain.ErrInvalid)
}

func TestAlertViews(t *testing.T) {
	l := startLedger(t)
	v := alertList(t, l, "")
	require.Empty(t, v.Alerts)
	require.NotNil(t, v.Alerts, "alerts is [] rather than null")
	for _, sev := range []string{"info", "warning", "critical"} {
		require.Contains(t, v.Last, sev)
		require.Nil(t, v.Last[sev])
	}
	require.Zero(t, v.DeliveryFailures.Count)

	info1 := alertRaise(t, l, map[string]any{"severity": "info", "title": "info 1"})
	warn1 := alertRaise(t, l, map[string]any{"severity": "warning", "title": "warning 1"})
	v = alertList(t, l, "")
	require.Nil(t, v.Last["critical"], "no critical alert yet")
	crit1 := alertRaise(t, l, map[string]any{"severity": "critical", "title": "critical 1"})
	warn2 := alertRaise(t, l, map[string]any{"severity": "warning", "title": "warning 2"})

	v = alertList(t, l, "")
	require.Equal(t, alertIDs([]domain.Alert{warn2, crit1, warn1, info1}), alertIDs(v.Alerts), "newest first")
	require.Equal(t, warn2, v.Alerts[0])
	require.Equal(t, info1.ID, v.Last["info"].ID)
	require.Equal(t, warn2.ID, v.Last["warning"].ID)
	require.Equal(t, crit1.ID, v.Last["critical"].ID)

	require.Equal(t, alertIDs([]domain.Alert{warn2, warn1}), alertIDs(alertList(t, l, "severity=warning").Alerts))
	require.Equal(t, alertIDs([]domain.Alert{crit1}), alertIDs(alertList(t, l, "severity=critical").Alerts))
	require.Equal(t, alertIDs([]domain.Alert{warn2, crit1}), alertIDs(alertList(t, l, "limit=2").Alerts))
	require.Equal(t, alertIDs([]domain.Alert{warn2}), alertIDs(alertList(t, l, "severity=warning&limit=1").Alerts))
	// last is every severity's, whatever the filter.
	require.Equal(t, info1.ID, alertList(t, l, "severity=warning").Last["info"].ID)
}

func TestAlertBadInput(t *testing.T) {
	l := startLedger(t)
	post := func(body any) response { return l.do("POST", "/admin/alerts", body) }

	alertRequireProblem(t, post(map[string]any{"severity": "warning", "message": "m"}), http.StatusBadRequest, "title", "empty")
	alertRequireProblem(t, post(map[string]any{"severity": "warning", "title": "   "}), http.StatusBadRequest, "title", "empty")
	alertRequireProblem(t, post(map[string]any{"title": strings.Repeat("t", 201)}), http.StatusBadRequest, "title", "201", "200")
	alertRequireProblem(t, post(map[string]any{"title": "t", "message": strings.Repeat("m", 4001)}), http.StatusBadRequest, "message", "4001", "4000")
	alertRequireProblem(t, post(map[string]any{"title": "t", "context": map[string]any{"blob": strings.Repeat("x", 9000)}}),
		http.StatusBadRequest, "context", "8192")
	alertRequireProblem(t, post(`{"title":"t","sevirity":"warning"}`), http.StatusBadRequest, "sevirity", "unknown field")
	alertRequireProblem(t, post(`{"title":"t","context":"k=v"}`), http.StatusBadRequest, "context", "JSON object")
	alertRequireProblem(t, post(`{"title":"t"`), http.StatusBadRequest, "body")
	alertRequireProblem(t, post(""), http.StatusBadRequest, "body", "empty")

	alertRequireProblem(t, l.do("GET", "/admin/alerts?severity=bogus", nil), http.StatusBadRequest, "severity", "bogus")
	alertRequireProblem(t, l.do("GET", "/admin/alerts?limit=0", nil), http.StatusBadRequest, "limit")
	alertRequireProblem(t, l.do("GET", "/admin/alerts/watch?since=yesterday", nil), http.StatusBadRequest, "since", "yesterday")
	alertRequireProblem(t, l.do("GET", "/admin/alerts/watch?severity=bogus", nil), http.StatusBadRequest, "severity")

	// Nothing above was recorded; the limits themselves are allowed.
	require.Empty(t, alertList(t, l, "").Alerts)
	a := alertRaise(t, l, map[string]any{"title": strings.Repeat("t", 200), "message": strings.Repeat("m", 4000)})
	require.Len(t, a.Message, 4000)
	require.Len(t, alertList(t, l, "").Alerts, 1)
}

func TestAlertCLI(t *testing.T) {
	l := startLedger(t)
	addr := l.Main.Addr()
	ctx := context.Background()

	var out, errOut bytes.Buffer
	code := app.Run(ctx, []string{"alert", "--addr", addr, "--severity", "warning", "--title", "T", "--message", "M",
		"--context", "k=v"}, &out, &errOut)
	require.Equal(t, 0, code, "stderr: %s", errOut.String())
	v := alertList(t, l, "")
	require.Len(t, v.Alerts, 1)
	a := v.Alerts[0]
	require.Equal(t, domain.SeverityWarning, a.Severity)
	require.Equal(t, "T", a.Title)
	require.Equal(t, "M", a.Message)
	require.Equal(t, map[string]any{"k": "v"}, a.Context)
	require.Equal(t, "cli", a.Actor)
	require.Equal(t, fmt.Sprintf(`[%s] [WARNING] T: M {"k":"v"}`, alertStamp(a)), strings.TrimSpace(out.String()))

	// --title is required: a usage error, nothing raised.
	out.Reset()
	errOut.Reset()
	code = app.Run(ctx, []string{"alert", "--addr", addr, "--severity", "warning", "--message", "M"}, &out, &errOut)
	require.Equal(t, 2, code)
	require.Contains(t, errOut.String(), "--title")
	// A malformed --context is a usage error too.
	code = app.Run(ctx, []string{"alert", "--addr", addr, "--title", "T", "--context", "novalue"}, &out, &errOut)
	require.Equal(t, 2, code)
	// What the service refuses fails with its detail.
	errOut.Reset()
	code = app.Run(ctx, []string{"alert", "--addr", addr, "--title", strings.Repeat("t", 201)}, &out, &errOut)
	require.Equal(t, 1, code)
	require.Contains(t, errOut.String(), "maximum is 200")
	require.Len(t, alertList(t, l, "").Alerts, 1)
}

func TestAlertsWatchCLI(t *testing.T) {
	l := startLedger(t)
	old := alertRaise(t, l, map[string]any{"severity": "warning", "title": "Older", "message": "raised before watching"})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- app.Run(ctx, []string{"alerts", "watch", "--since", "1h", "--addr", l.Main.Addr()}, &out, &errOut)
	}()
	oldLine := sinks.AlertLine(old)
	require.Equal(t, fmt.Sprintf("[%s] [WARNING] Older: raised before watching", alertStamp(old)), oldLine)
	eventually(t, func() bool { return strings.Contains(out.String(), oldLine) }, "watch should replay the older alert")

	fresh := alertRaise(t, l, map[string]any{"severity": "critical", "title": "Newer", "message": "raised while watching",
		"context": map[string]any{"n": 1}})
	eventually(t, func() bool { return strings.Contains(out.String(), "Newer") }, "watch should print the new alert")
	require.Equal(t, oldLine+"\n"+sinks.AlertLine(fresh)+"\n", out.String())

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, "stderr: %s", errOut.String())
	case <-time.After(10 * time.Second):
		t.Fatal("alerts watch did not return after its context was cancelled")
	}

	// Usage errors.
	var o, e bytes.Buffer
	require.Equal(t, 2, app.Run(context.Background(), []string{"alerts"}, &o, &e))
	require.Equal(t, 2, app.Run(context.Background(), []string{"alerts", "list"}, &o, &e))
}

// alertWatchStream opens GET /admin/alerts/watch with the query q and returns a line reader
// and a function that closes it.
func alertWatchStream(t *testing.T, l *ledger, q string) (*bufio.Scanner, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", l.URL+"/admin/alerts/watch?"+q, nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	closeIt := func() { cancel(); res.Body.Close() }
	t.Cleanup(closeIt)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "application/x-ndjson", res.Header.Get("Content-Type"))
	return bufio.NewScanner(res.Body), closeIt
}

// alertNextLine reads the next NDJSON alert from sc, failing after 10s.
func alertNextLine(t *testing.T, sc *bufio.Scanner) domain.Alert {
	t.Helper()
	type line struct {
		a   domain.Alert
		err error
		ok  bool
	}
	ch := make(chan line, 1)
	go func() {
		if !sc.Scan() {
			ch <- line{err: sc.Err()}
			return
		}
		var a domain.Alert
		err := json.Unmarshal(sc.Bytes(), &a)
		ch <- line{a: a, err: err, ok: true}
	}()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		require.True(t, r.ok, "the watch stream ended")
		return r.a
	case <-time.After(10 * time.Second):
		t.Fatal("no alert on the watch stream within 10s")
		return domain.Alert{}
	}
}

func TestAlertsWatchHTTP(t *testing.T) {
	l := startLedger(t)
	old := alertRaise(t, l, map[string]any{"severity": "info", "title": "before"})

	// Since a duration ago: the older alert first, then live ones.
	all, closeAll := alertWatchStream(t, l, "since=1h")
	got := alertNextLine(t, all)
	require.Equal(t, old, got)

	// A severity filter from now on: the stream answers once its consumer exists, so whatever is
	// raised after the headers arrived is on it.
	warnings, closeWarnings := alertWatchStream(t, l, "severity=warning")
	info := alertRaise(t, l, map[string]any{"severity": "info", "title": "not a warning"})
	warn := alertRaise(t, l, map[string]any{"severity": "warning", "title": "a warning", "context": map[string]any{"k": "v"}})
	require.Equal(t, warn, alertNextLine(t, warnings))
	require.Equal(t, info, alertNextLine(t, all))
	require.Equal(t, warn, alertNextLine(t, all))
	closeWarnings()
	closeAll()

	// Since an RFC 3339 time between the first alert and the second: the second on.
	since := info.Timestamp.Add(-time.Millisecond).UTC().Format(time.RFC3339Nano)
	later, closeLater := alertWatchStream(t, l, url.Values{"since": {since}}.Encode())
	defer closeLater()
	require.Equal(t, info, alertNextLine(t, later))
	require.Equal(t, warn, alertNextLine(t, later))
}

// An open watch stream must not hold up the service's shutdown: Close ends the stream.
func TestAlertsWatchDoesNotHoldUpShutdown(t *testing.T) {
	l := startLedger(t)
	sc, closeIt := alertWatchStream(t, l, "")
	defer closeIt()
	ended := make(chan struct{})
	go func() {
		for sc.Scan() {
		}
		close(ended)
	}()
	start := time.Now()
	err := l.closeMain()
	took := time.Since(start)
	require.NoError(t, err)
	require.Less(t, took, 5*time.Second, "Close waited %v for the watch stream", took)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch stream did not end when the service closed")
	}
}
