package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// hookRequest is one request a hookServer received.
type hookRequest struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	Status int
}

// hookServer is a webhook receiver: it answers the nth request (from 1) with status(n) and
// records every request.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	status   func(n int) int
	requests []hookRequest
}

func newHookServer(t *testing.T, status func(n int) int) *hookServer {
	t.Helper()
	h := &hookServer{status: status}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		code := h.status(len(h.requests) + 1)
		h.requests = append(h.requests, hookRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Status: code})
		h.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(h.Close)
	return h
}

func hookOK(int) int { return http.StatusNoContent }

// setStatus changes how the receiver answers from now on.
func (h *hookServer) setStatus(status func(n int) int) {
	h.mu.Lock()
	h.status = status
	h.mu.Unlock()
}

// all returns every request received so far.
func (h *hookServer) all() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.requests...)
}

// delivered returns the requests answered with a 2xx status.
func (h *hookServer) delivered() []hookRequest {
	var out []hookRequest
	for _, r := range h.all() {
		if r.Status >= 200 && r.Status < 300 {
			out = append(out, r)
		}
	}
	return out
}

// deliveredIDs returns the ids of the plain JSON alerts delivered, in order.
func (h *hookServer) deliveredIDs(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, r := range h.delivered() {
		var a domain.Alert
		require.NoError(t, json.Unmarshal(r.Body, &a), "body: %s", r.Body)
		out = append(out, a.ID)
	}
	return out
}

// waitDelivered waits until n alerts were delivered and returns their ids.
func (h *hookServer) waitDelivered(t *testing.T, n int) []string {
	t.Helper()
	require.Eventually(t, func() bool { return len(h.delivered()) >= n }, 15*time.Second, 10*time.Millisecond,
		"the webhook should receive %d alerts", n)
	ids := h.deliveredIDs(t)
	require.Len(t, ids, n)
	return ids
}

// hookRedirect is a RoundTripper that sends every request to target, keeping its path, and
// records the URLs it was asked for.
type hookRedirect struct {
	target *url.URL
	mu     sync.Mutex
	asked  []string
}

func (r *hookRedirect) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.asked = append(r.asked, req.URL.String())
	r.mu.Unlock()
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = r.target.Scheme, r.target.Host, ""
	return http.DefaultTransport.RoundTrip(out)
}

func (r *hookRedirect) urls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.asked...)
}

// withWebhook configures the webhook sink to post to u with quick retries.
func withWebhook(u string, attempts int) func(*ledger) {
	return withConfig(func(c *app.Config) {
		c.AlertWebhook = u
		c.AlertWebhookAttempts = attempts
		c.AlertWebhookBackoff = 10 * time.Millisecond
		c.AlertWebhookTimeout = 5 * time.Second
	})
}

func TestAlertWebhookPlainJSON(t *testing.T) {
	hook := newHookServer(t, hookOK)
	l := startLedger(t, withWebhook(hook.URL+"/hooks/memledger", 5))
	a := alertRaise(t, l, map[string]any{"severity": "critical", "title": "Projection stuck", "message": "behind by 42",
		"context": map[string]any{"behind": 42, "projection": "memories"}})

	hook.waitDelivered(t, 1)
	r := hook.delivered()[0]
	require.Equal(t, http.MethodPost, r.Method)
	require.Equal(t, "/hooks/memledger", r.Path)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &body))
	require.NotContains(t, body, "embeds")
	require.Equal(t, a.ID, body["id"])
	require.Equal(t, "critical", body["severity"])
	require.Equal(t, "Projection stuck", body["title"])
	require.Equal(t, "behind by 42", body["message"])
	require.Equal(t, map[string]any{"behind": float64(42), "projection": "memories"}, body["context"])
	ts, err := time.Parse(time.RFC3339Nano, body["timestamp"].(string))
	require.NoError(t, err)
	require.True(t, a.Timestamp.Equal(ts), "timestamp %v, alert %v", ts, a.Timestamp)
	var decoded domain.Alert
	require.NoError(t, json.Unmarshal(r.Body, &decoded))
	require.Equal(t, a, decoded)
	alertWaitSink(t, l, "webhook", 1)
}

func TestAlertWebhookDiscordEmbed(t *testing.T) {
	hook := newHookServer(t, hookOK)
	target, err := url.Parse(hook.URL)
	require.NoError(t, err)
	rt := &hookRedirect{target: target}
	const discord = "https://discord.com/api/webhooks/1/abc"
	l := startLedger(t, withWebhook(discord, 5), withWebhookTransport(rt))

	a := alertRaise(t, l, map[string]any{"severity": "warning", "title": "Harness pass rate below threshold",
		"message": "80% < 85%", "context": map[string]any{"pass_rate": 0.8, "threshold": 0.85, "note": "nightly"}})
	require.Eventually(t, func() bool { return len(hook.delivered()) == 1 }, 15*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{discord}, rt.urls(), "the sink posts to the Discord URL itself")
	r := hook.delivered()[0]
	require.Equal(t, "/api/webhooks/1/abc", r.Path)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))

	var body struct {
		Embeds []struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			Color       int    `json:"color"`
			Fields      []struct {
				Name   string `json:"name"`
				Value  string `json:"value"`
				Inline bool   `json:"inline"`
			} `json:"fields"`
			Timestamp string `json:"timestamp"`
		} `json:"embeds"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &body), "body: %s", r.Body)
	require.Len(t, body.Embeds, 1, "body: %s", r.Body)
	e := body.Embeds[0]
	require.Contains(t, e.Title, "Harness pass rate below threshold")
	require.Equal(t, "[WARNING] Harness pass rate below threshold", e.Title)
	require.Equal(t, "80% < 85%", e.Description)
	require.Equal(t, 0xF1C40F, e.Color, "warning is yellow")
	ts, err := time.Parse(time.RFC3339, e.Timestamp)
	require.NoError(t, err)
	require.Equal(t, a.Timestamp.UTC().Truncate(time.Second), ts.UTC())
	require.Len(t, e.Fields, 3)
	fields := map[string]string{}
	for _, f := range e.Fields {
		fields[f.Name] = f.Value
	}
	require.Equal(t, map[string]string{"note": "nightly", "pass_rate": "0.8", "threshold": "0.85"}, fields)
	require.Equal(t, []string{"note", "pass_rate", "threshold"}, []string{e.Fields[0].Name, e.Fields[1].Name, e.Fields[2].Name})

	// The colour follows the severity.
	alertRaise(t, l, map[string]any{"severity": "critical", "title": "c"})
	alertRaise(t, l, map[string]any{"severity": "info", "title": "i"})
	require.Eventually(t, func() bool { return len(hook.delivered()) == 3 }, 15*time.Second, 10*time.Millisecond)
	var colours []int
	for _, r := range hook.delivered()[1:] {
		var p map[string][]map[string]any
		require.NoError(t, json.Unmarshal(r.Body, &p))
		require.Len(t, p["embeds"], 1)
		colours = append(colours, int(p["embeds"][0]["color"].(float64)))
		require.NotContains(t, p["embeds"][0], "fields", "no context, no fields")
	}
	require.Equal(t, []int{0xE74C3C, 0x3498DB}, colours)
}

func TestAlertWebhookRetriesThenDeliversOnce(t *testing.T) {
	hook := newHookServer(t, func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	l := startLedger(t, withWebhook(hook.URL, 5))
	a := alertRaise(t, l, map[string]any{"severity": "warning", "title": "flaky receiver"})
	require.Equal(t, []string{a.ID}, hook.waitDelivered(t, 1))
	require.Len(t, hook.all(), 3, "two 503s, then the delivery")

	// A later alert comes after it; the first is never sent again.
	b := alertRaise(t, l, map[string]any{"severity": "info", "title": "next"})
	require.Equal(t, []string{a.ID, b.ID}, hook.waitDelivered(t, 2))
	require.Len(t, hook.all(), 4)

	v := alertList(t, l, "")
	require.Zero(t, v.DeliveryFailures.Count)
	alertWaitSink(t, l, "webhook", 2)
	h := alertHealthOf(t, l)
	require.Zero(t, h.AlertDeliveryFailures)
	require.Contains(t, h.AlertSinks["webhook"].LastError, "503")
}

func TestAlertWebhookGivesUpAndRecordsFailure(t *testing.T) {
	hook := newHookServer(t, func(int) int { return http.StatusServiceUnavailable })
	const attempts = 3
	l := startLedger(t, withWebhook(hook.URL, attempts))
	a := alertRaise(t, l, map[string]any{"severity": "critical", "title": "nobody listens"})

	var v alertsView
	eventually(t, func() bool {
		v = alertList(t, l, "")
		return v.DeliveryFailures.Count > 0
	}, "the webhook's failure should be recorded")
	require.Equal(t, 1, v.DeliveryFailures.Count)
	require.Len(t, v.DeliveryFailures.Recent, 1)
	f := v.DeliveryFailures.Recent[0]
	require.Equal(t, "webhook", f.Sink)
	require.Equal(t, attempts, f.Attempts)
	require.Equal(t, a.ID, f.AlertID)
	require.Equal(t, a.Seq, f.AlertSeq)
	require.Contains(t, f.Error, "503")
	require.Len(t, hook.all(), attempts)
	require.Equal(t, 1, alertHealthOf(t, l).AlertDeliveryFailures)

	// No alert is raised about the failure. To know that nothing more is coming, raise a marker
	// and wait for the file sink, which follows every alert in log order, to write it.
	marker := alertRaise(t, l, map[string]any{"severity": "info", "title": "marker"})
	lines := alertWaitLines(t, l.cfg.AlertLogPath(), 2)
	require.Contains(t, lines[0], "nobody listens")
	require.Contains(t, lines[1], "marker")
	v = alertList(t, l, "")
	require.Equal(t, []string{marker.ID, a.ID}, alertIDs(v.Alerts), "no alert about the delivery failure")

	// The sink went on: once the receiver answers again, the marker is delivered (and the alert it
	// gave up on is not sent again).
	hook.setStatus(hookOK)
	require.Equal(t, []string{marker.ID}, hook.waitDelivered(t, 1))
	require.Equal(t, 1, alertList(t, l, "").DeliveryFailures.Count)

	// A 4xx other than 408 and 429 is not retried.
	hook.setStatus(func(int) int { return http.StatusNotFound })
	before := len(hook.all())
	c := alertRaise(t, l, map[string]any{"severity": "info", "title": "gone"})
	eventually(t, func() bool { return alertList(t, l, "").DeliveryFailures.Count == 2 }, "the 404 should be recorded")
	f = alertList(t, l, "").DeliveryFailures.Recent[0]
	require.Equal(t, c.ID, f.AlertID)
	require.Equal(t, 1, f.Attempts)
	require.Len(t, hook.all(), before+1)
	require.Equal(t, 2, alertHealthOf(t, l).AlertDeliveryFailures)
	require.Len(t, alertList(t, l, "").Alerts, 3)
}

func TestAlertSinksFailOpen(t *testing.T) {
	// The alert log's parent is a regular file, so the file sink cannot write (even as root).
	dir := t.TempDir()
	blocker := filepath.Join(dir, "blocked")
	require.NoError(t, os.WriteFile(blocker, []byte("not a directory"), 0o644))
	logPath := filepath.Join(blocker, "alerts.log")
	hook := newHookServer(t, hookOK)
	l := startLedger(t, withWebhook(hook.URL, 5), withConfig(func(c *app.Config) { c.AlertLog = logPath }))

	start := time.Now()
	a := alertRaise(t, l, map[string]any{"severity": "warning", "title": "first while the file is broken"})
	require.Less(t, time.Since(start), 2*time.Second, "raising does not wait for the sinks")
	b := alertRaise(t, l, map[string]any{"severity": "critical", "title": "second while the file is broken"})

	// Recorded, and the webhook has both.
	require.Equal(t, []string{b.ID, a.ID}, alertIDs(alertList(t, l, "").Alerts))
	require.Equal(t, []string{a.ID, b.ID}, hook.waitDelivered(t, 2))
	eventually(t, func() bool { return alertHealthOf(t, l).AlertSinks["file"].LastError != "" }, "the file sink should report its error")
	alertWaitSink(t, l, "webhook", 2)
	alertWaitSink(t, l, "log", 2)
	h := alertHealthOf(t, l)
	require.Zero(t, h.AlertSinks["file"].Delivered)
	require.Equal(t, "ok", h.Status)
	require.Zero(t, h.AlertDeliveryFailures, "the file sink retries until it can write")
	_, err := os.Stat(logPath)
	require.Error(t, err)

	// Other writes go on too.
	l.create(map[string]any{"memory_type": "knowledge", "content": "writes go on while a sink fails"})

	// Writable again: the file sink catches up from its own position, each line once.
	require.NoError(t, os.Remove(blocker))
	require.NoError(t, os.Mkdir(blocker, 0o755))
	lines := alertWaitLines(t, logPath, 2)
	require.Equal(t, fmt.Sprintf("[%s] [WARNING] first while the file is broken: ", alertStamp(a)), lines[0])
	require.Equal(t, fmt.Sprintf("[%s] [CRITICAL] second while the file is broken: ", alertStamp(b)), lines[1])
	c := alertRaise(t, l, map[string]any{"severity": "info", "title": "after the repair"})
	lines = alertWaitLines(t, logPath, 3)
	require.Contains(t, lines[2], "after the repair")
	require.Equal(t, []string{a.ID, b.ID, c.ID}, hook.waitDelivered(t, 3))
	alertWaitSink(t, l, "file", 3)
	require.Zero(t, alertList(t, l, "").DeliveryFailures.Count)
}

func TestAlertSlowWebhookBlocksNothing(t *testing.T) {
	release := make(chan struct{})
	var hung sync.WaitGroup
	hung.Add(1)
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(hung.Done)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(slow.Close)
	l := startLedger(t, withConfig(func(c *app.Config) {
		c.AlertWebhook = slow.URL
		c.AlertWebhookTimeout = time.Minute
		c.AlertWebhookBackoff = 10 * time.Millisecond
	}))
	t.Cleanup(func() { close(release) })

	start := time.Now()
	a := alertRaise(t, l, map[string]any{"severity": "warning", "title": "the webhook hangs"})
	hung.Wait()
	b := alertRaise(t, l, map[string]any{"severity": "warning", "title": "still answered"})
	require.Less(t, time.Since(start), 5*time.Second)
	lines := alertWaitLines(t, l.cfg.AlertLogPath(), 2)
	require.Contains(t, lines[0], a.Title)
	require.Contains(t, lines[1], b.Title)
	alertWaitSink(t, l, "log", 2)
	require.Zero(t, alertHealthOf(t, l).AlertSinks["webhook"].Delivered)
}

func TestAlertRestartAndRebuildSendNothingTwice(t *testing.T) {
	hook := newHookServer(t, hookOK)
	l := startLedger(t, withWebhook(hook.URL, 5))
	logPath := l.cfg.AlertLogPath()
	var raised []domain.Alert
	sinceStart := 0
	raise := func(title string) {
		raised = append(raised, alertRaise(t, l, map[string]any{"severity": "warning", "title": title,
			"context": map[string]any{"n": len(raised)}}))
		sinceStart++
	}
	// settled waits until every sink has delivered (and acknowledged) what was raised since the
	// ledger started, then checks the webhook and the file hold each alert exactly once.
	settled := func() {
		t.Helper()
		eventually(t, func() bool {
			h := alertHealthOf(t, l)
			return h.AlertSinks["webhook"].Delivered >= uint64(sinceStart) && h.AlertSinks["file"].Delivered >= uint64(sinceStart) &&
				h.AlertSinks["log"].Delivered >= uint64(sinceStart)
		}, "the sinks should deliver every alert")
		h := alertHealthOf(t, l)
		for _, name := range []string{"webhook", "file", "log"} {
			require.Equal(t, uint64(sinceStart), h.AlertSinks[name].Delivered, "sink %s", name)
		}
		ids := hook.deliveredIDs(t)
		require.Equal(t, alertIDs(raised), ids, "the webhook got each alert once, in order")
		lines := alertLogLines(t, logPath)
		require.Len(t, lines, len(raised), "lines: %q", lines)
		for i, a := range raised {
			require.Equal(t, fmt.Sprintf(`[%s] [WARNING] %s:  {"n":%d}`, alertStamp(a), a.Title, i), lines[i])
		}
	}
	for i := range 3 {
		raise(fmt.Sprintf("before restart %d", i))
	}
	settled()

	// A restart resumes each sink after what it delivered. Anything sent again would come before
	// the new alert, which each sink takes in log order.
	l.restart()
	sinceStart = 0
	raise("after restart")
	settled()

	// A rebuild replays the whole log into the projections and sends nothing.
	l.stop()
	var out, errOut bytes.Buffer
	code := app.Run(context.Background(), []string{"rebuild", "--data", l.cfg.Data}, &out, &errOut)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out.String(), errOut.String())
	require.Contains(t, out.String(), "rebuild: done")
	l.start()
	sinceStart = 0
	v := alertList(t, l, "")
	require.Len(t, v.Alerts, 4, "the rebuilt projection holds every alert")
	require.Equal(t, raised[3].ID, v.Last["warning"].ID)
	raise("after rebuild")
	settled()
}

// A restart while the webhook is answering an alert must neither send that alert twice nor
// hold the sink up afterwards (the consumer's AckWait, subscriptions.DefaultAckWait: an alert left
// unacknowledged by the shutdown blocks the sink that long, then goes out a second time).
func TestAlertRestartDuringDeliverySendsOnceAndCatchesUp(t *testing.T) {
	var mu sync.Mutex
	var received []string
	inFlight := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a domain.Alert
		json.NewDecoder(r.Body).Decode(&a)
		mu.Lock()
		received = append(received, a.Title)
		mu.Unlock()
		once.Do(func() { close(inFlight) })
		time.Sleep(300 * time.Millisecond) // a receiver that takes its time to answer
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), received...)
	}
	l := startLedger(t, withWebhook(srv.URL, 5))
	alertRaise(t, l, map[string]any{"severity": "warning", "title": "in flight"})
	select {
	case <-inFlight:
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook was not called")
	}
	l.restart() // while the receiver is still answering
	alertRaise(t, l, map[string]any{"severity": "warning", "title": "next"})
	require.Eventually(t, func() bool { return slices.Contains(got(), "next") }, 10*time.Second, 10*time.Millisecond,
		"after the restart the next alert should go out promptly; got %q", got())
	require.Equal(t, []string{"in flight", "next"}, got(), "each alert once")
}

func TestAlertNATSSubscriber(t *testing.T) {
	const user, pass = "watcher", "s3cret-pass"
	l := startLedger(t, withConfig(func(c *app.Config) {
		c.NatsListen = "127.0.0.1:0"
		c.NatsUser, c.NatsPassword = user, pass
	}))
	u := l.Main.Store.ClientURL()
	require.NotEmpty(t, u)
	require.NotContains(t, u, ":0", "port 0 is a random port")

	nc, err := nats.Connect(u, nats.UserInfo(user, pass))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync("ledger.alert.>")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	// A memory write is not an alert: the subscriber only sees the alert.
	l.create(map[string]any{"memory_type": "knowledge", "content": "not an alert"})
	a := alertRaise(t, l, map[string]any{"severity": "critical", "title": "to subscribers", "message": "m",
		"context": map[string]any{"k": "v"}})
	msg, err := sub.NextMsg(10 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "ledger.alert.critical", msg.Subject)
	var env struct {
		ID          string    `json:"id"`
		Type        string    `json:"type"`
		AggregateID string    `json:"aggregate_id"`
		Actor       string    `json:"actor"`
		Time        time.Time `json:"time"`
		Data        struct {
			Severity string            `json:"severity"`
			Title    string            `json:"title"`
			Message  string            `json:"message"`
			Context  map[string]string `json:"context"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(msg.Data, &env), "body: %s", msg.Data)
	require.Equal(t, "alert.raised", env.Type)
	require.Equal(t, a.ID, env.ID)
	require.Equal(t, "critical", env.AggregateID)
	require.Equal(t, "critical", env.Data.Severity)
	require.Equal(t, "to subscribers", env.Data.Title)
	require.Equal(t, "m", env.Data.Message)
	require.Equal(t, map[string]string{"k": "v"}, env.Data.Context)
	require.True(t, a.Timestamp.Equal(env.Time))
	_, err = sub.NextMsg(50 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "one alert, one message")

	// Without the credentials, or with wrong ones, the connection is refused.
	_, err = nats.Connect(u, nats.NoReconnect())
	require.Error(t, err)
	require.Contains(t, strings.ToLower(err.Error()), "authorization")
	_, err = nats.Connect(u, nats.UserInfo(user, "wrong"), nats.NoReconnect())
	require.Error(t, err)
}
