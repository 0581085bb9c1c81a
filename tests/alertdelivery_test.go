package tests

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/stretchr/testify/require"
)

// TestAlertWebhookDownLongerThanTheOldBudget: the receiver is down for far longer than the five
// attempts the sink used to make would have covered; the alerts wait, in order, and are each
// delivered once when it is back, with no delivery failure recorded.
func TestAlertWebhookDownLongerThanTheOldBudget(t *testing.T) {
	hook := newHookServer(t, func(int) int { return http.StatusServiceUnavailable })
	l := startLedger(t, withConfig(func(c *app.Config) {
		c.AlertWebhook = hook.URL
		c.AlertWebhookBackoff = 10 * time.Millisecond
		c.AlertWebhookMaxBackoff = 40 * time.Millisecond
		c.AlertWebhookTimeout = 5 * time.Second
	}))
	// With these settings five attempts span 10+20+40+40 = 110 ms; the receiver stays down
	// for at least 2 s, and many more attempts.
	var ids []string
	for i := range 5 {
		ids = append(ids, alertRaise(t, l, map[string]any{"severity": "warning", "title": "down " + strconv.Itoa(i)}).ID)
	}
	down := time.Now()
	require.Eventually(t, func() bool { return len(hook.all()) >= 20 }, 30*time.Second, 10*time.Millisecond)
	for time.Since(down) < 2*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	require.Empty(t, hook.delivered())
	h := alertHealthOf(t, l)
	require.Zero(t, h.AlertDeliveryFailures, "nothing given up on")
	require.True(t, h.AlertSinks["webhook"].Failing)
	require.Equal(t, uint64(5), h.AlertSinks["webhook"].Lag)

	hook.setStatus(hookOK)
	require.Equal(t, ids, hook.waitDelivered(t, 5))
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, ids, hook.deliveredIDs(t), "each once, in order")
	require.Zero(t, alertList(t, l, "").DeliveryFailures.Count)
	require.Eventually(t, func() bool { s := alertHealthOf(t, l).AlertSinks["webhook"]; return s.Lag == 0 && !s.Failing }, 10*time.Second, 10*time.Millisecond)
}

// TestAlertWebhookRetryForThenRedeliver: an alert retried past --alert-webhook-retry-for is
// given up on and recorded, the next ones go on; an operator redelivers from a position.
func TestAlertWebhookRetryForThenRedeliver(t *testing.T) {
	hook := newHookServer(t, func(int) int { return http.StatusServiceUnavailable })
	l := startLedger(t, withConfig(func(c *app.Config) {
		c.AlertWebhook = hook.URL
		c.AlertWebhookBackoff = 10 * time.Millisecond
		c.AlertWebhookMaxBackoff = 20 * time.Millisecond
		c.AlertWebhookRetryFor = 200 * time.Millisecond
	}))
	a := alertRaise(t, l, map[string]any{"title": "lost while down"})
	eventually(t, func() bool { return alertList(t, l, "").DeliveryFailures.Count == 1 }, "the give-up should be recorded")
	require.Greater(t, alertList(t, l, "").DeliveryFailures.Recent[0].Attempts, 3)
	hook.setStatus(hookOK)
	b := alertRaise(t, l, map[string]any{"title": "after"})
	c := alertRaise(t, l, map[string]any{"title": "later"})
	require.Equal(t, []string{b.ID, c.ID}, hook.waitDelivered(t, 2))

	// Redeliver from the lost alert's position: it and those after it, in order.
	res := l.expect(http.StatusOK, "POST", "/admin/alerts/redeliver", map[string]any{"since": strconv.FormatUint(a.Seq, 10)}).JSON(t)
	require.Equal(t, "webhook", res["sink"])
	require.Equal(t, []string{b.ID, c.ID, a.ID, b.ID, c.ID}, hook.waitDelivered(t, 5))

	// By time, through the command.
	var out, errOut bytes.Buffer
	code := app.Run(t.Context(), []string{"alerts", "redeliver", "--since", c.Timestamp.Format(time.RFC3339Nano), "--addr", l.Main.Addr()}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	require.Equal(t, []string{b.ID, c.ID, a.ID, b.ID, c.ID, c.ID}, hook.waitDelivered(t, 6))

	requireProblem(t, l.do("POST", "/admin/alerts/redeliver", map[string]any{"since": "soon"}), http.StatusBadRequest, "since")
	requireProblem(t, l.do("POST", "/admin/alerts/redeliver", map[string]any{"since": "1", "sink": "pager"}), http.StatusBadRequest, "sink")
	requireProblem(t, l.do("POST", "/admin/alerts/redeliver", map[string]any{}), http.StatusBadRequest, "since")
}
