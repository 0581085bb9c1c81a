package tests

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

// TestBrowserRevert: the revert page shows the plan of a slice as a table, writes nothing
// until the confirmation is given, then applies it; the memory's history page tells the
// story.
func TestBrowserRevert(t *testing.T) {
	chromiumPath(t) // skip before starting anything when there is no browser
	l := startLedger(t)
	good := l.mem(map[string]any{"memory_type": "knowledge", "content": "the stream denies purge"}, "X-Actor", "alice")
	wrong := l.mem(map[string]any{"memory_type": "knowledge", "content": "a wrong fact"}, "X-Actor", "bad-bot")
	l.act("PUT", "/memory/"+good.ID, map[string]any{"content": "the stream allows purge"}, "X-Actor", "bad-bot")
	ctx := startBrowser(t)
	browserSignIn(t, ctx, l, l.token("olga", "admin", nil))
	last := l.lastSeq()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(l.URL+"/ui/revert"),
		chromedp.WaitVisible(chromedp.CSS("#f-actor")),
		chromedp.SendKeys(chromedp.CSS("#f-actor"), "bad-bot"),
		chromedp.SendKeys(chromedp.CSS("#f-note"), "bad-bot misread the docs"),
		chromedp.Click(chromedp.CSS("#preview")),
		chromedp.WaitVisible(chromedp.CSS("#plan")),
	))
	require.Equal(t, 2, browserRun(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#plan tbody tr[data-id]").length`)))
	require.Equal(t, "revert", browserText(t, ctx, "#plan-"+good.ID+" .outcome"))
	require.Contains(t, browserText(t, ctx, "#plan-"+good.ID), "the stream denies purge", "the state it returns to")
	require.Contains(t, browserText(t, ctx, "#plan-"+wrong.ID), "invalidated")
	require.Equal(t, last, l.lastSeq(), "the plan writes nothing")

	// Without the confirmation the form does not go; with it, the revert is applied.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#apply"))))
	require.Equal(t, last, l.lastSeq(), "not confirmed, not applied")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#confirm")),
		chromedp.Click(chromedp.CSS("#apply")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	))
	require.Equal(t, "2 memories reverted", browserText(t, ctx, ".flash"))
	require.Equal(t, "reverted", browserText(t, ctx, "#plan-"+good.ID+" .outcome"))
	require.Equal(t, last+2, l.lastSeq())
	require.Equal(t, "the stream denies purge", l.get(good.ID).Content)
	require.Equal(t, domain.StatusInvalid, l.get(wrong.ID).Status)
	entries := l.auditOf(good.ID)
	require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionUpdated, domain.ActionReverted}, actions(entries))
	require.Equal(t, "bad-bot misread the docs", entries[2].Note)
	require.Equal(t, "olga", entries[2].Actor, "the signed-in admin")

	// The history page: the bad change, undone by the revert, who and why.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(l.URL+"/ui/memory/"+good.ID), chromedp.WaitVisible(chromedp.CSS("#timeline"))))
	bad, rev := "#entry-"+strconv.FormatUint(entries[1].Seq, 10), "#entry-"+strconv.FormatUint(entries[2].Seq, 10)
	require.Contains(t, browserText(t, ctx, bad), "undone by #"+strconv.FormatUint(entries[2].Seq, 10))
	story := browserText(t, ctx, rev)
	for _, want := range []string{"reverted", "olga", "bad-bot misread the docs", "undoes #" + strconv.FormatUint(entries[1].Seq, 10), "the stream denies purge"} {
		require.True(t, strings.Contains(story, want), "the revert's entry says %q: %s", want, story)
	}

	// A reviewer may not even see the plan.
	rita := l.token("rita", "reviewer", nil)
	res := l.do(http.MethodGet, "/ui/revert?actor=bad-bot", nil, "Authorization", "Bearer "+rita)
	require.Equal(t, http.StatusForbidden, res.Status)
	res = l.do(http.MethodPost, "/admin/revert", map[string]any{"actor": "bad-bot"}, "Authorization", "Bearer "+rita)
	require.Equal(t, http.StatusForbidden, res.Status)

	// A bad filter on the page is a 400 that says what is wrong.
	res = l.do(http.MethodGet, "/ui/revert?since=2026-11-30T00:00:00Z&until=2026-11-29T00:00:00Z", nil)
	require.Equal(t, http.StatusBadRequest, res.Status)
	require.Contains(t, string(res.Body), "is not after since")
}
