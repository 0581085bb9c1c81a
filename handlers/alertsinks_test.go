package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// sinkTestAlert is an alert as the sinks get it.
func sinkTestAlert(sev domain.Severity, title, message string, ctx map[string]any) domain.Alert {
	if ctx == nil {
		ctx = map[string]any{}
	}
	return domain.Alert{ID: "0b6f7a1e-5c8e-4f57-9f7e-2f1c1d0e9a11", Severity: sev, Title: title, Message: message,
		Context: ctx, Timestamp: time.Date(2026, 4, 16, 21, 54, 10, 123456789, time.UTC), Seq: 7, Actor: "test"}
}

func TestAlertLine(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name string
		a    domain.Alert
		want string
	}{
		{"the documented shape", sinkTestAlert(domain.SeverityWarning, "title", "message", map[string]any{"context": "as JSON"}),
			`[2026-04-16T21:54:10Z] [WARNING] title: message {"context":"as JSON"}`},
		{"no context, no JSON", sinkTestAlert(domain.SeverityInfo, "T", "M", nil),
			`[2026-04-16T21:54:10Z] [INFO] T: M`},
		{"critical; keys sorted; numbers and nesting as JSON", sinkTestAlert(domain.SeverityCritical, "T", "M",
			map[string]any{"b": 2, "a": []any{1, "x"}, "c": map[string]any{"d": nil}}),
			`[2026-04-16T21:54:10Z] [CRITICAL] T: M {"a":[1,"x"],"b":2,"c":{"d":null}}`},
		{"newlines stay on one line", sinkTestAlert(domain.SeverityInfo, "two\nlines", "a\r\nb", nil),
			`[2026-04-16T21:54:10Z] [INFO] two\nlines: a\r\nb`},
		{"empty message", sinkTestAlert(domain.SeverityInfo, "T", "", nil), `[2026-04-16T21:54:10Z] [INFO] T: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, AlertLine(tc.a))
		})
	}

	// The time is shown in UTC, to the second.
	a := sinkTestAlert(domain.SeverityInfo, "T", "M", nil)
	a.Timestamp = time.Date(2026, 4, 16, 23, 54, 10, 999999999, cet)
	require.Equal(t, `[2026-04-16T22:54:10Z] [INFO] T: M`, AlertLine(a))
}

func TestAlertLineCutsContextAt500(t *testing.T) {
	prefix := `[2026-04-16T21:54:10Z] [WARNING] T: M `
	// ASCII: exactly 500 bytes of the JSON.
	long := sinkTestAlert(domain.SeverityWarning, "T", "M", map[string]any{"blob": strings.Repeat("x", 600)})
	full, err := json.Marshal(long.Context)
	require.NoError(t, err)
	require.Len(t, full, 611)
	line := AlertLine(long)
	require.Equal(t, prefix+string(full[:500]), line)
	require.Equal(t, 500, len(strings.TrimPrefix(line, prefix)))
	require.Equal(t, MaxLineContext, 500)

	// A JSON of exactly 500 characters is kept whole; 501 loses its last.
	exact := sinkTestAlert(domain.SeverityWarning, "T", "M", map[string]any{"blob": strings.Repeat("y", 500-len(`{"blob":""}`))})
	data, _ := json.Marshal(exact.Context)
	require.Len(t, data, 500)
	require.Equal(t, prefix+string(data), AlertLine(exact))
	exact.Context["blob"] = exact.Context["blob"].(string) + "y"
	data, _ = json.Marshal(exact.Context)
	require.Equal(t, prefix+string(data[:500]), AlertLine(exact))
	require.True(t, strings.HasSuffix(AlertLine(exact), `y"`), "the closing brace is cut")

	// Characters, not bytes: a multi-byte context is cut at 500 characters, never inside one.
	wide := sinkTestAlert(domain.SeverityWarning, "T", "M", map[string]any{"blob": strings.Repeat("é", 600)})
	cut := strings.TrimPrefix(AlertLine(wide), prefix)
	require.True(t, utf8.ValidString(cut))
	require.Equal(t, 500, utf8.RuneCountInString(cut))
	require.Equal(t, `{"blob":"`+strings.Repeat("é", 491), cut)
}

func TestTruncate(t *testing.T) {
	require.Equal(t, "", truncate("", 3))
	require.Equal(t, "abc", truncate("abc", 3))
	require.Equal(t, "ab", truncate("abc", 2))
	require.Equal(t, "", truncate("abc", 0))
	require.Equal(t, "éé", truncate("ééé", 2))
	require.Equal(t, "日本", truncate("日本語", 2))
	require.Equal(t, "日本語", truncate("日本語", 3))
}

func TestIsDiscordWebhook(t *testing.T) {
	for u, want := range map[string]bool{
		"https://discord.com/api/webhooks/1/abc":            true,
		"https://discordapp.com/api/webhooks/1/abc":         true,
		"https://canary.discord.com/api/webhooks/1/abc":     true,
		"https://ptb.discordapp.com/api/webhooks/1/abc":     true,
		"https://DISCORD.com/api/webhooks/1/abc":            true,
		"https://discord.com:443/api/webhooks/1/abc?wait=1": true,
		"https://discord.com/api/v10/webhooks/1/abc":        false,
		"https://discord.com/channels/1/2":                  false,
		"https://notdiscord.com/api/webhooks/1/abc":         false,
		"https://discord.com.example.org/api/webhooks/1/a":  false,
		"https://example.org/discord.com/api/webhooks/1/a":  false,
		"https://example.org/api/webhooks/1/abc":            false,
		"https://hooks.slack.com/services/T/B/X":            false,
		"http://127.0.0.1:8080/hook":                        false,
		"":                                                  false,
		"::not a url":                                       false,
	} {
		require.Equal(t, want, IsDiscordWebhook(u), "%q", u)
	}
}

// sinkTestEmbed is the embed of a Discord payload, decoded as Discord reads it.
type sinkTestEmbed struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Color       int    `json:"color"`
	Fields      []struct {
		Name   string `json:"name"`
		Value  string `json:"value"`
		Inline bool   `json:"inline"`
	} `json:"fields"`
	Timestamp string `json:"timestamp"`
}

func sinkTestDecodeEmbed(t *testing.T, data []byte) sinkTestEmbed {
	t.Helper()
	var body struct {
		Embeds []sinkTestEmbed `json:"embeds"`
	}
	require.NoError(t, json.Unmarshal(data, &body), "body: %s", data)
	require.Len(t, body.Embeds, 1, "body: %s", data)
	return body.Embeds[0]
}

func sinkTestPayload(t *testing.T, a domain.Alert) sinkTestEmbed {
	t.Helper()
	data, err := json.Marshal(DiscordPayload(a))
	require.NoError(t, err)
	return sinkTestDecodeEmbed(t, data)
}

func TestDiscordPayload(t *testing.T) {
	a := sinkTestAlert(domain.SeverityWarning, "Harness pass rate below threshold", "80.0% (8/10), below 85.0%",
		map[string]any{"pass_rate": 0.8, "threshold": 0.85, "total": 10, "note": "nightly", "nested": map[string]any{"k": "v"}})
	e := sinkTestPayload(t, a)
	require.Equal(t, "[WARNING] Harness pass rate below threshold", e.Title)
	require.Equal(t, "80.0% (8/10), below 85.0%", e.Description)
	require.Equal(t, 0xF1C40F, e.Color)
	require.Equal(t, "2026-04-16T21:54:10Z", e.Timestamp)
	var got []string
	for _, f := range e.Fields {
		require.True(t, f.Inline)
		got = append(got, f.Name+"="+f.Value)
	}
	require.Equal(t, []string{`nested={"k":"v"}`, "note=nightly", "pass_rate=0.8", "threshold=0.85", "total=10"}, got,
		"sorted by key; strings as they are, anything else as JSON")

	colours := map[domain.Severity]int{}
	for _, sev := range domain.Severities {
		colours[sev] = sinkTestPayload(t, sinkTestAlert(sev, "T", "M", nil)).Color
	}
	require.Equal(t, map[domain.Severity]int{domain.SeverityInfo: 0x3498DB, domain.SeverityWarning: 0xF1C40F,
		domain.SeverityCritical: 0xE74C3C}, colours)

	// No context, no fields.
	data, err := json.Marshal(DiscordPayload(sinkTestAlert(domain.SeverityInfo, "T", "M", nil)))
	require.NoError(t, err)
	require.NotContains(t, string(data), "fields")
}

func TestDiscordPayloadPerFieldLimits(t *testing.T) {
	ctx := map[string]any{}
	for i := range 30 {
		ctx[fmt.Sprintf("k%02d", i)] = "v"
	}
	ctx["k00"] = strings.Repeat("v", 2000)
	ctx[strings.Repeat("a", 300)] = "long name"
	a := sinkTestAlert(domain.SeverityCritical, strings.Repeat("t", 300), strings.Repeat("m", 5000), ctx)
	e := sinkTestPayload(t, a)
	require.Equal(t, 256, utf8.RuneCountInString(e.Title))
	require.True(t, strings.HasPrefix(e.Title, "[CRITICAL] ttt"))
	require.Equal(t, 4096, utf8.RuneCountInString(e.Description))
	require.Len(t, e.Fields, 25)
	for _, f := range e.Fields {
		require.LessOrEqual(t, utf8.RuneCountInString(f.Name), 256)
		require.LessOrEqual(t, utf8.RuneCountInString(f.Value), 1024)
	}
	require.Equal(t, strings.Repeat("a", 256), e.Fields[0].Name, "sorted by key, the long name first")
	require.Equal(t, "long name", e.Fields[0].Value)
	require.Equal(t, "k00", e.Fields[1].Name)
	require.Equal(t, strings.Repeat("v", 1024), e.Fields[1].Value)
	require.Equal(t, "k23", e.Fields[24].Name, "the first 25 keys are kept")
}

// Discord refuses (400) an embed whose title, description, field names and values together
// are over 6000 characters. An alert within memledger's own limits (message 4000 characters,
// context 8192 bytes of JSON) must still give a payload Discord accepts, else the webhook
// records a permanent delivery failure for it.
func TestDiscordPayloadWithinTotalLimit(t *testing.T) {
	a := sinkTestAlert(domain.SeverityCritical, strings.Repeat("t", domain.MaxAlertTitle), strings.Repeat("m", domain.MaxAlertMessage),
		map[string]any{"a": strings.Repeat("a", 1500), "b": strings.Repeat("b", 1500), "c": strings.Repeat("c", 1500)})
	_, err := domain.DecideAlert(domain.RaiseAlert{Severity: "critical", Title: a.Title, Message: a.Message, Context: a.Context},
		domain.Meta{EventID: "x", Actor: "test", Time: time.Now()})
	require.NoError(t, err, "the alert is within memledger's limits")

	e := sinkTestPayload(t, a)
	total := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
	for _, f := range e.Fields {
		total += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	require.LessOrEqual(t, total, 6000, "Discord refuses embeds over 6000 characters in total")
	require.Contains(t, e.Title, "ttt")
}

// sinkTestServer answers every request with status (and header) and records the bodies.
type sinkTestServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	paths  []string
	header http.Header
}

func newSinkTestServer(t *testing.T, status int, header http.Header) *sinkTestServer {
	t.Helper()
	s := &sinkTestServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies, s.paths, s.header = append(s.bodies, body), append(s.paths, r.URL.Path), r.Header.Clone()
		s.mu.Unlock()
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		io.WriteString(w, "answer")
	}))
	t.Cleanup(s.Close)
	return s
}

func TestWebhookSinkStatuses(t *testing.T) {
	a := sinkTestAlert(domain.SeverityWarning, "T", "M", map[string]any{"k": "v"})
	for _, tc := range []struct {
		status          int
		ok, permanent   bool
		wantErrContains string
	}{
		{http.StatusOK, true, false, ""},
		{http.StatusNoContent, true, false, ""},
		{http.StatusAccepted, true, false, ""},
		{http.StatusBadRequest, false, true, "400"},
		{http.StatusUnauthorized, false, true, "401"},
		{http.StatusNotFound, false, true, "404"},
		{http.StatusRequestTimeout, false, false, "408"},
		{http.StatusTooManyRequests, false, false, "429"},
		{http.StatusInternalServerError, false, false, "500"},
		{http.StatusBadGateway, false, false, "502"},
		{http.StatusServiceUnavailable, false, false, "503"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := newSinkTestServer(t, tc.status, nil)
			err := WebhookSink{URL: srv.URL + "/hook", Client: srv.Client()}.Deliver(context.Background(), a)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.wantErrContains)
				var perm PermanentError
				require.Equal(t, tc.permanent, errors.As(err, &perm), "permanent: %v", err)
			}
			require.Len(t, srv.bodies, 1, "one request per delivery")
		})
	}

	// A receiver that cannot be reached is worth retrying.
	srv := newSinkTestServer(t, http.StatusOK, nil)
	u := srv.URL
	srv.Close()
	err := WebhookSink{URL: u, Client: &http.Client{Timeout: time.Second}}.Deliver(context.Background(), a)
	require.Error(t, err)
	var perm PermanentError
	require.False(t, errors.As(err, &perm))

	// A URL that cannot make a request is not.
	err = WebhookSink{URL: "http://[::1", Client: http.DefaultClient}.Deliver(context.Background(), a)
	require.Error(t, err)
	require.True(t, errors.As(err, &perm))
}

func TestWebhookSinkRetryAfter(t *testing.T) {
	a := sinkTestAlert(domain.SeverityWarning, "T", "M", nil)
	srv := newSinkTestServer(t, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
	start := time.Now()
	err := WebhookSink{URL: srv.URL, Client: srv.Client()}.Deliver(context.Background(), a)
	require.Error(t, err)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After is honoured")

	// The wait ends with the context.
	slow := newSinkTestServer(t, http.StatusServiceUnavailable, http.Header{"Retry-After": {"60"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	require.Error(t, WebhookSink{URL: slow.URL, Client: slow.Client()}.Deliver(ctx, a))
	require.Less(t, time.Since(start), 5*time.Second)
}

// sinkTestRedirect sends every request to target and records the URLs asked for.
type sinkTestRedirect struct {
	target *url.URL
	asked  []string
}

func (r *sinkTestRedirect) RoundTrip(req *http.Request) (*http.Response, error) {
	r.asked = append(r.asked, req.URL.String())
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = r.target.Scheme, r.target.Host, ""
	return http.DefaultTransport.RoundTrip(out)
}

func TestWebhookSinkBodies(t *testing.T) {
	a := sinkTestAlert(domain.SeverityCritical, "Stuck", "behind by 3", map[string]any{"behind": 3})

	plain := newSinkTestServer(t, http.StatusOK, nil)
	require.NoError(t, WebhookSink{URL: plain.URL + "/x", Client: plain.Client()}.Deliver(context.Background(), a))
	require.Equal(t, "application/json", plain.header.Get("Content-Type"))
	var got domain.Alert
	require.NoError(t, json.Unmarshal(plain.bodies[0], &got))
	require.Equal(t, a.ID, got.ID)
	require.Equal(t, a.Severity, got.Severity)
	require.Equal(t, a.Title, got.Title)
	require.Equal(t, a.Message, got.Message)
	require.Equal(t, map[string]any{"behind": float64(3)}, got.Context)
	require.True(t, a.Timestamp.Equal(got.Timestamp))

	discord := newSinkTestServer(t, http.StatusNoContent, nil)
	target, _ := url.Parse(discord.URL)
	for _, u := range []string{"https://discord.com/api/webhooks/1/abc", "https://discordapp.com/api/webhooks/2/def"} {
		rt := &sinkTestRedirect{target: target}
		require.NoError(t, WebhookSink{URL: u, Client: &http.Client{Transport: rt}}.Deliver(context.Background(), a))
		require.Equal(t, []string{u}, rt.asked)
	}
	require.Equal(t, []string{"/api/webhooks/1/abc", "/api/webhooks/2/def"}, discord.paths)
	for _, body := range discord.bodies {
		e := sinkTestDecodeEmbed(t, body)
		require.Equal(t, "[CRITICAL] Stuck", e.Title)
		require.Equal(t, "behind by 3", e.Description)
		require.Equal(t, 0xE74C3C, e.Color)
		require.Equal(t, "2026-04-16T21:54:10Z", e.Timestamp)
		require.Len(t, e.Fields, 1)
		require.Equal(t, "behind", e.Fields[0].Name)
		require.Equal(t, "3", e.Fields[0].Value)
	}
}

func TestFileSink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "dir", "alerts.log")
	s := FileSink{Path: path}
	require.Equal(t, "file", s.Name())
	a := sinkTestAlert(domain.SeverityWarning, "first", "m", nil)
	b := sinkTestAlert(domain.SeverityInfo, "second", "m", map[string]any{"k": 1})
	require.NoError(t, s.Deliver(context.Background(), a), "the directories are created")
	require.NoError(t, s.Deliver(context.Background(), b))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, AlertLine(a)+"\n"+AlertLine(b)+"\n", string(data))

	// Appended to what is there.
	require.NoError(t, os.WriteFile(path, []byte("kept\n"), 0o644))
	require.NoError(t, s.Deliver(context.Background(), a))
	data, _ = os.ReadFile(path)
	require.Equal(t, "kept\n"+AlertLine(a)+"\n", string(data))

	// A parent that is a regular file fails, even for root.
	blocker := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	require.Error(t, FileSink{Path: filepath.Join(blocker, "alerts.log")}.Deliver(context.Background(), a))
}

func TestLogSink(t *testing.T) {
	var buf bytes.Buffer
	s := LogSink{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	require.Equal(t, "log", s.Name())
	for _, sev := range domain.Severities {
		require.NoError(t, s.Deliver(context.Background(), sinkTestAlert(sev, "T "+string(sev), "M", map[string]any{"k": "v"})))
	}
	var levels []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		levels = append(levels, rec["level"].(string))
		require.Contains(t, rec["msg"], "alert: T ")
		require.Equal(t, map[string]any{"k": "v"}, rec["context"])
		require.Equal(t, "0b6f7a1e-5c8e-4f57-9f7e-2f1c1d0e9a11", rec["alert_id"])
	}
	require.Equal(t, []string{"INFO", "WARN", "ERROR"}, levels)
}

// The SinkRunner tests run on a real embedded log.

func sinkTestStore(t *testing.T) (*eventstore.Store, jetstream.Stream) {
	t.Helper()
	s := eventstore.New(t.TempDir())
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	require.NoError(t, s.Open(context.Background()))
	t.Cleanup(func() { s.Close() })
	stream, err := s.JetStream().Stream(context.Background(), s.Stream)
	require.NoError(t, err)
	return s, stream
}

// sinkTestRaise appends an alert to the log and returns it.
func sinkTestRaise(t *testing.T, s *eventstore.Store, title string) domain.Alert {
	t.Helper()
	ev, err := domain.DecideAlert(domain.RaiseAlert{Severity: "warning", Title: title},
		domain.Meta{EventID: uuid.NewString(), Actor: "test", Time: time.Now()})
	require.NoError(t, err)
	evs := []domain.Event{ev}
	_, err = s.Append(context.Background(), eventstore.Unchecked, evs...)
	require.NoError(t, err)
	a, ok := domain.AlertOf(evs[0])
	require.True(t, ok)
	return a
}

// funcSink is a Sink made of a function.
type funcSink struct {
	name    string
	deliver func(ctx context.Context, a domain.Alert) error
}

func (s funcSink) Name() string { return s.name }

func (s funcSink) Deliver(ctx context.Context, a domain.Alert) error { return s.deliver(ctx, a) }

// recordingSink records the titles it delivered and succeeds.
type recordingSink struct {
	name   string
	mu     sync.Mutex
	titles []string
}

func (s *recordingSink) Name() string { return s.name }

func (s *recordingSink) Deliver(_ context.Context, a domain.Alert) error {
	s.mu.Lock()
	s.titles = append(s.titles, a.Title)
	s.mu.Unlock()
	return nil
}

func (s *recordingSink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.titles...)
}

// sinkTestRun starts r and returns a function that stops it and waits for it.
func sinkTestRun(t *testing.T, r *SinkRunner) (jetstream.Consumer, func()) {
	t.Helper()
	if r.Logger == nil {
		r.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := r.Start(ctx)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx, cons)
	}()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the sink runner did not stop")
		}
	}
	t.Cleanup(stop)
	return cons, stop
}

func TestSinkRunnerDeliversNewAlertsInOrder(t *testing.T) {
	store, stream := sinkTestStore(t)
	sinkTestRaise(t, store, "before the sink existed")
	sink := &recordingSink{name: "rec"}
	r := &SinkRunner{Sink: sink, Stream: stream}
	cons, stop := sinkTestRun(t, r)
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprint("alert ", i))
		sinkTestRaise(t, store, want[i])
	}
	require.Eventually(t, func() bool { return len(sink.got()) == 5 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, want, sink.got(), "a new sink sees the alerts raised from then on, in order")
	require.Eventually(t, func() bool { return r.Status().Delivered == 5 }, 10*time.Second, 5*time.Millisecond)
	stop()
	info, err := cons.Info(context.Background())
	require.NoError(t, err)
	require.Equal(t, "alert-sink-rec", info.Name)
	require.Zero(t, info.NumAckPending)
	require.Zero(t, info.NumPending)

	// A second runner of the same sink resumes after the last one acknowledged.
	sinkTestRaise(t, store, "while stopped")
	again := &recordingSink{name: "rec"}
	sinkTestRun(t, &SinkRunner{Sink: again, Stream: stream})
	require.Eventually(t, func() bool { return len(again.got()) == 1 }, 10*time.Second, 5*time.Millisecond)
	sinkTestRaise(t, store, "after")
	require.Eventually(t, func() bool { return len(again.got()) == 2 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"while stopped", "after"}, again.got())
}

func TestSinkRunnerRetriesGivesUpAndGoesOn(t *testing.T) {
	store, stream := sinkTestStore(t)
	var mu sync.Mutex
	tries := map[string]int{}
	type gaveUp struct {
		title    string
		attempts int
		err      error
	}
	var gave []gaveUp
	sink := funcSink{name: "flaky", deliver: func(_ context.Context, a domain.Alert) error {
		mu.Lock()
		defer mu.Unlock()
		tries[a.Title]++
		switch {
		case strings.HasPrefix(a.Title, "always"):
			return errors.New("down")
		case strings.HasPrefix(a.Title, "permanent"):
			return PermanentError{errors.New("refused")}
		case a.Title == "twice" && tries[a.Title] <= 2:
			return errors.New("not yet")
		}
		return nil
	}}
	r := &SinkRunner{Sink: sink, Stream: stream, Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
		GiveUp: func(_ context.Context, a domain.Alert, attempts int, err error) {
			mu.Lock()
			gave = append(gave, gaveUp{a.Title, attempts, err})
			mu.Unlock()
		}}
	cons, stop := sinkTestRun(t, r)
	for _, title := range []string{"always 1", "twice", "permanent", "ok"} {
		sinkTestRaise(t, store, title)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return tries["ok"] == 1
	}, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	require.Equal(t, map[string]int{"always 1": 3, "twice": 3, "permanent": 1, "ok": 1}, tries)
	require.Len(t, gave, 2)
	require.Equal(t, "always 1", gave[0].title)
	require.Equal(t, 3, gave[0].attempts)
	require.EqualError(t, gave[0].err, "down")
	require.Equal(t, "permanent", gave[1].title)
	require.Equal(t, 1, gave[1].attempts)
	mu.Unlock()
	require.Eventually(t, func() bool { return r.Status().Delivered == 2 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "refused", r.Status().LastError)
	require.NotNil(t, r.Status().LastErrAt)
	stop()
	info, err := cons.Info(context.Background())
	require.NoError(t, err)
	require.Zero(t, info.NumAckPending, "given-up alerts are acknowledged too")
	require.Zero(t, info.NumPending)
}

func TestSinkRunnerUnboundedAttempts(t *testing.T) {
	store, stream := sinkTestStore(t)
	var mu sync.Mutex
	n := 0
	sink := funcSink{name: "file-like", deliver: func(context.Context, domain.Alert) error {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n < 6 {
			return errors.New("not writable yet")
		}
		return nil
	}}
	gaveUp := false
	r := &SinkRunner{Sink: sink, Stream: stream, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		GiveUp: func(context.Context, domain.Alert, int, error) { gaveUp = true }}
	sinkTestRun(t, r)
	sinkTestRaise(t, store, "a")
	require.Eventually(t, func() bool { return r.Status().Delivered == 1 }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	require.Equal(t, 6, n)
	mu.Unlock()
	require.False(t, gaveUp, "Attempts 0 retries until delivered")
}

// A delivery that succeeds just as the service shuts down must still be acknowledged:
// otherwise, after a restart, the sink waits out the consumer's AckWait (a minute) and then
// delivers the alert a second time.
func TestSinkRunnerAcksADeliveryThatRacesShutdown(t *testing.T) {
	store, stream := sinkTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	delivered := make(chan string, 10)
	sink := funcSink{name: "racy", deliver: func(_ context.Context, a domain.Alert) error {
		delivered <- a.Title
		cancel() // the service shuts down while the sink reports success
		return nil
	}}
	r := &SinkRunner{Sink: sink, Stream: stream, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cons, err := r.Start(ctx)
	require.NoError(t, err)
	a := sinkTestRaise(t, store, "delivered once")
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx, cons)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the runner did not stop")
	}
	require.Equal(t, "delivered once", <-delivered)

	info, err := cons.Info(context.Background())
	require.NoError(t, err)
	require.Zero(t, info.NumAckPending, "a delivered alert must be acknowledged even when shutdown follows at once")
	require.Equal(t, a.Seq, info.AckFloor.Stream)

	// After the restart, the next alert comes promptly and the first is not delivered again.
	again := &recordingSink{name: "racy"}
	sinkTestRun(t, &SinkRunner{Sink: again, Stream: stream})
	sinkTestRaise(t, store, "next")
	require.Eventually(t, func() bool { return len(again.got()) > 0 }, 5*time.Second, 5*time.Millisecond,
		"the restarted sink should deliver the next alert promptly")
	require.Equal(t, []string{"next"}, again.got())
}
