package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestUISearch: the search page shows the hits with their snippets, escaped but for the
// marks; the review queue searches its candidates.
func TestUISearch(t *testing.T) {
	l := startLedger(t)
	hit := l.mem(map[string]any{"memory_type": "knowledge", "content": `The <script>alert(1)</script> laser needs cleaning`})
	cand := l.mem(map[string]any{"memory_type": "knowledge", "content": "Maybe the laser lens is cracked", "status": "candidate"})
	otherCand := l.mem(map[string]any{"memory_type": "knowledge", "content": "Prefers tea", "status": "candidate"})
	l.search(url.Values{"q": {"laser"}}) // the index has applied every write

	for _, path := range []string{"/ui/", "/ui/review"} {
		body := string(l.expect(http.StatusOK, "GET", path, nil).Body)
		require.Contains(t, body, `type="search" name="q"`, "%s has a search box", path)
	}
	body := string(l.expect(http.StatusOK, "GET", "/ui/search?q=laser", nil).Body)
	require.Contains(t, body, `href="/ui/memory/`+hit.ID+`"`)
	require.Contains(t, body, "The &lt;script&gt;alert(1)&lt;/script&gt; <mark>laser</mark> needs cleaning")
	require.NotContains(t, body, "<script>alert")
	require.NotContains(t, body, cand.ID, "candidates are not active")
	body = string(l.expect(http.StatusOK, "GET", "/ui/search?q=laser&status=candidate", nil).Body)
	require.Contains(t, body, cand.ID)

	body = string(l.expect(http.StatusOK, "GET", "/ui/review?q=laser", nil).Body)
	require.Contains(t, body, "candidate-"+cand.ID)
	require.NotContains(t, body, "candidate-"+otherCand.ID)
	require.NotContains(t, body, "candidate-"+hit.ID)

	res := l.do("GET", "/ui/search?q=l*", nil)
	require.Equal(t, http.StatusBadRequest, res.Status)
	require.Contains(t, string(res.Body), "too short")
}

// TestBrowserSearchBox types a query into the dashboard's search box and follows a hit.
func TestBrowserSearchBox(t *testing.T) {
	chromiumPath(t)
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "The laser cutter lens is cleaned weekly"})
	l.mem(map[string]any{"memory_type": "knowledge", "content": "Prefers tea"})
	l.search(url.Values{"q": {"laser"}})

	ctx := startBrowserFor(t, l)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(l.URL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`form.search input[name=q]`)),
		chromedp.SendKeys(chromedp.CSS(`form.search input[name=q]`), "lens"),
		chromedp.Submit(chromedp.CSS(`form.search input[name=q]`)),
		chromedp.WaitVisible(chromedp.CSS("#search-results")),
	))
	require.Equal(t, "1 found", browserText(t, ctx, "#search-total"))
	require.Equal(t, "The laser cutter lens is cleaned weekly", strings.TrimSpace(browserText(t, ctx, ".hit .snippet")))
	require.Equal(t, "lens", browserText(t, ctx, ".hit .snippet mark"))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(".hit .snippet")),
		chromedp.WaitVisible(chromedp.CSS("#timeline")),
	))
	require.Equal(t, l.URL+"/ui/memory/"+m.ID, browserRun(t, ctx, chromedp.Location()))
}
