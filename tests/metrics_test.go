package tests

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"

	"github.com/stretchr/testify/require"
)

func TestMetrics(t *testing.T) {
	l := startLedger(t)
	l.create(map[string]any{"memory_type": "knowledge", "content": "metrics count this"})
	require.Equal(t, 404, l.do("GET", "/memory/nope", nil).Status)
	res := l.do("GET", "/metrics", nil)
	require.Equal(t, 200, res.Status)
	body := string(res.Body)
	for _, want := range []string{
		`memledger_http_requests_total{code="201",method="POST",route="POST /memory"} 1`,
		`memledger_http_requests_total{code="404",method="GET",route="GET /memory/{id}"} 1`,
		`memledger_log_last_seq 2`, // the first start's admin token, the memory
		`memledger_projection_checkpoint{projection="memories"} 2`,
		`memledger_projection_lag{projection="memories"} 0`,
		`memledger_memories{status="active"} 1`,
		`memledger_memories{status="candidate"} 0`,
		`memledger_alert_delivery_failures 0`,
		`memledger_http_request_duration_seconds_bucket{route="POST /memory",le=`,
		`go_goroutines`,
	} {
		require.True(t, strings.Contains(body, want), "missing %s in:\n%s", want, body)
	}
}

// Refusals are counted with the route's answers: a 401 without a token, a 403 for a role
// that may not.
func TestMetricsCountRefusals(t *testing.T) {
	l := startLedger(t)
	writer := "Bearer " + l.token("assistant", "writer", nil)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "refusals are counted", "status": "candidate"})
	require.Equal(t, http.StatusUnauthorized, l.do("GET", "/memory", nil, noToken, "1").Status)
	require.Equal(t, http.StatusUnauthorized, l.do("GET", "/memory", nil, "Authorization", "Bearer mlt_unknown").Status)
	require.Equal(t, http.StatusForbidden, l.do("POST", "/memory/"+m.ID+"/promote", nil, "Authorization", writer).Status)
	body := string(l.expect(http.StatusOK, "GET", "/metrics", nil).Body)
	for _, want := range []string{
		`memledger_http_requests_total{code="401",method="GET",route="GET /memory"} 2`,
		`memledger_http_requests_total{code="403",method="POST",route="POST /memory/{id}/promote"} 1`,
	} {
		require.Contains(t, body, want)
	}
	// Without a token the API's /metrics is refused, and the refusal counted too.
	require.Equal(t, http.StatusUnauthorized, l.do("GET", "/metrics", nil, noToken, "1").Status)
	require.Contains(t, string(l.expect(http.StatusOK, "GET", "/metrics", nil).Body),
		`memledger_http_requests_total{code="401",method="GET",route="GET /metrics"} 1`)
}

// --metrics-addr serves the same metrics without a token on a listener of its own, which
// serves nothing else; the API's /metrics still needs a token.
func TestMetricsListener(t *testing.T) {
	l := startLedger(t, withConfig(func(c *app.Config) { c.MetricsAddr = "127.0.0.1:0" }))
	l.create(map[string]any{"memory_type": "knowledge", "content": "scraped"})
	addr := l.Main.MetricsAddr()
	require.NotEmpty(t, addr)
	get := func(method, path, host string) (int, string) {
		req, err := http.NewRequest(method, "http://"+addr+path, nil)
		require.NoError(t, err)
		if host != "" {
			req.Host = host
		}
		res, err := (&http.Transport{}).RoundTrip(req) // no token: not the harness's transport
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, string(b)
	}
	status, body := get("GET", "/metrics", "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `memledger_memories{status="active"} 1`)
	require.Contains(t, body, `memledger_http_requests_total{code="201",method="POST",route="POST /memory"} 1`)
	status, body = get("GET", "/memory", "")
	require.Equal(t, http.StatusNotFound, status, "the metrics listener serves nothing else")
	require.Contains(t, body, "serves only GET /metrics")
	require.NotContains(t, body, "scraped")
	status, _ = get("POST", "/metrics", "")
	require.Equal(t, http.StatusMethodNotAllowed, status)
	status, body = get("GET", "/metrics", "evil.example:80")
	require.Equal(t, http.StatusMisdirectedRequest, status, "a forged Host is refused there too")
	require.Contains(t, body, "evil.example")
	require.Equal(t, http.StatusUnauthorized, l.do("GET", "/metrics", nil, noToken, "1").Status, "the API's /metrics needs a token")

	// The listener closes with the service.
	l.stop()
	_, err := net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err)
}

// On a wildcard --metrics-addr, a scraper that uses the address it connects to as its Host
// (as Prometheus does with a target like 127.0.0.2:9100) is served; a Host naming another
// address or a name is still refused.
func TestMetricsListenerOnAWildcardAddress(t *testing.T) {
	l := startLedger(t, withConfig(func(c *app.Config) { c.MetricsAddr = "0.0.0.0:0" }))
	_, port, err := net.SplitHostPort(l.Main.MetricsAddr())
	require.NoError(t, err)
	get := func(host string) (int, string) {
		req, err := http.NewRequest("GET", "http://"+net.JoinHostPort("127.0.0.2", port)+"/metrics", nil)
		require.NoError(t, err)
		req.Host = host
		res, err := (&http.Transport{}).RoundTrip(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, string(b)
	}
	status, body := get(net.JoinHostPort("127.0.0.2", port))
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, "memledger_memories")
	status, _ = get("127.0.0.3:" + port)
	require.Equal(t, http.StatusMisdirectedRequest, status, "another address than the one connected to")
	status, _ = get("rebind.attacker.example:" + port)
	require.Equal(t, http.StatusMisdirectedRequest, status, "a name")
}
