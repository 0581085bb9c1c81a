package sinks

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

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

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

// The Runner tests run on a real embedded log.
