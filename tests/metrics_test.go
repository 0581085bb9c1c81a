package tests

import (
	"strings"
	"testing"

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
