// Package tests holds end-to-end tests of the whole program: the real embedded NATS server,
// real bbolt files in temporary directories, HTTP over loopback.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

// ledger is a running memledger and an HTTP client for it.
type ledger struct {
	t    testing.TB
	Main *app.Main
	URL  string
	cfg  app.Config
	// now, when set, is the clock the ledger stamps commands with.
	now func() time.Time
	// webhookTransport, when set, carries the alert webhook sink's requests.
	webhookTransport http.RoundTripper
	// searchIdle leaves the search index idle (see app.Main.SearchIdle).
	searchIdle bool
	// projectionsHook, when set, is the projection runner's hook (see app.Main.ProjectionsHook).
	projectionsHook func([]domain.Event) error
	// logReviveFree is app.Main.LogReviveFree.
	logReviveFree uint64
	// logw, when set, receives the ledger's log as well.
	logw io.Writer
	// beforeAdminToken is app.Main.BeforeAdminToken.
	beforeAdminToken func()
}

// startLedger starts memledger in-process on a fresh data directory (or the given one) and
// stops it when the test ends.
func startLedger(t testing.TB, opts ...func(*ledger)) *ledger {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.NightlyAt = "" // tests run the pipeline themselves
	l := &ledger{t: t, cfg: cfg}
	for _, o := range opts {
		o(l)
	}
	l.start()
	t.Cleanup(l.stop)
	return l
}

func withFsync(mode string) func(*ledger) { return func(l *ledger) { l.cfg.Fsync = mode } }

// withClock makes the ledger stamp commands with now instead of the wall clock.
func withClock(now func() time.Time) func(*ledger) { return func(l *ledger) { l.now = now } }

// withConfig lets a test change the ledger's configuration before it starts.
func withConfig(f func(*app.Config)) func(*ledger) { return func(l *ledger) { f(&l.cfg) } }

// withLog copies the ledger's log to w.
func withLog(w io.Writer) func(*ledger) { return func(l *ledger) { l.logw = w } }

// withWebhookTransport makes the alert webhook sink send its requests through rt.
func withWebhookTransport(rt http.RoundTripper) func(*ledger) {
	return func(l *ledger) { l.webhookTransport = rt }
}

func (l *ledger) start() {
	l.t.Helper()
	var logw io.Writer = io.Discard
	if os.Getenv("MEMLEDGER_TEST_LOG") != "" {
		logw = os.Stderr
	}
	if l.logw != nil {
		logw = io.MultiWriter(logw, l.logw)
	}
	m := app.NewMain(l.cfg, slog.New(slog.NewTextHandler(logw, nil)))
	m.Now = l.now
	m.WebhookTransport = l.webhookTransport
	m.SearchIdle = l.searchIdle
	m.ProjectionsHook = l.projectionsHook
	m.LogReviveFree = l.logReviveFree
	m.BeforeAdminToken = l.beforeAdminToken
	require.NoError(l.t, m.Open(context.Background()))
	l.Main, l.URL = m, "http://"+m.Addr()
	apiChecked(m.Addr())
	registerLedger(l.URL, l.cfg.Data)
}

func (l *ledger) stop() {
	if l.Main != nil {
		require.NoError(l.t, l.closeMain())
	}
}

// closeMain closes the ledger's service and forgets its address (see apiUnchecked).
func (l *ledger) closeMain() error {
	addr := l.Main.Addr()
	err := l.Main.Close()
	apiUnchecked(addr)
	l.Main = nil
	return err
}

// restart stops the ledger and starts it again on the same data directory.
func (l *ledger) restart() {
	l.t.Helper()
	l.stop()
	l.start()
}

// response is an HTTP answer with its decoded JSON body.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &v), "body: %s", r.Body)
	return v
}

// Decode decodes the body into v.
func (r response) Decode(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.Body, v), "body: %s", r.Body)
}

// do sends a request; body is marshalled to JSON unless it is a string or []byte, sent as is.
// headers are name, value pairs.
func (l *ledger) do(method, path string, body any, headers ...string) response {
	l.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(l.t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, l.URL+path, rd)
	require.NoError(l.t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(l.t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(l.t, err)
	return response{Status: res.StatusCode, Header: res.Header, Body: data}
}

// create creates a memory and returns it.
func (l *ledger) create(body map[string]any, headers ...string) map[string]any {
	l.t.Helper()
	res := l.do("POST", "/memory", body, headers...)
	require.Equal(l.t, http.StatusCreated, res.Status, "body: %s", res.Body)
	return res.JSON(l.t)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 10*time.Millisecond, msg)
}
