package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
)

// pageMarks are the parts of the pages that only some roles may use.
var pageMarks = map[string]string{
	"review buttons": `class="promote"`,
	"revert link":    `href="/ui/revert"`,
}

// The pages offer each role only what it may use: a reader and a writer see the review queue
// without its promote and reject buttons, only an admin the revert page's link; the server
// refuses the hidden actions all the same.
func TestPagesOfferWhatTheRoleMay(t *testing.T) {
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "waiting for review", "status": "candidate"})
	want := map[domain.Role]map[string]bool{
		domain.RoleReader:   {"review buttons": false, "revert link": false},
		domain.RoleWriter:   {"review buttons": false, "revert link": false},
		domain.RoleReviewer: {"review buttons": true, "revert link": false},
		domain.RoleAdmin:    {"review buttons": true, "revert link": true},
	}
	for _, role := range domain.Roles {
		tok := "Bearer " + l.token("page-"+string(role), string(role), nil)
		for _, path := range []string{"/ui/review", "/ui/", "/ui/memory/" + m.ID, "/ui/search?q=review"} {
			page := string(l.expect(http.StatusOK, "GET", path, nil, "Authorization", tok).Body)
			require.Contains(t, page, `<span id="signed-in">page-`+string(role), "%s on %s", role, path)
			for mark, html := range pageMarks {
				if mark == "review buttons" && path != "/ui/review" {
					require.NotContains(t, page, html, "%s on %s", role, path)
					continue
				}
				if want[role][mark] {
					require.Contains(t, page, html, "%s sees the %s on %s", role, mark, path)
				} else {
					require.NotContains(t, page, html, "%s does not see the %s on %s", role, mark, path)
				}
			}
		}
		review := string(l.expect(http.StatusOK, "GET", "/ui/review", nil, "Authorization", tok).Body)
		require.Contains(t, review, "waiting for review", "every role reads the queue")
		require.Equal(t, !want[role]["review buttons"], strings.Contains(review, `id="review-readonly"`), role)
		if !want[role]["review buttons"] {
			// Hidden, and refused all the same.
			before := l.lastSeq()
			res := l.do("POST", "/ui/review/"+m.ID, "action=promote", "Authorization", tok, "Content-Type", "application/x-www-form-urlencoded")
			requireProblem(t, res, http.StatusForbidden, "", "needs the role reviewer")
			requireProblem(t, l.do("POST", "/memory/"+m.ID+"/promote", nil, "Authorization", tok), http.StatusForbidden, "", "needs the role reviewer")
			require.Equal(t, before, l.lastSeq())
		}
		if !want[role]["revert link"] {
			requireProblem(t, l.do("GET", "/ui/revert", nil, "Authorization", tok), http.StatusForbidden, "", "needs the role admin")
		}
	}

	// Without authentication every page is offered whole, to no one signed in.
	off := startLedger(t, withConfig(func(c *app.Config) { c.Auth = app.AuthOff }))
	off.mem(map[string]any{"memory_type": "knowledge", "content": "waiting too", "status": "candidate"})
	page := string(off.expect(http.StatusOK, "GET", "/ui/review", nil).Body)
	for _, html := range pageMarks {
		require.Contains(t, page, html)
	}
	require.NotContains(t, page, `id="signed-in"`)
}

// In a real browser: a reader signed in sees the queue without buttons and no revert link,
// and signs out with the header's button.
func TestBrowserReaderSeesNoReviewActions(t *testing.T) {
	l := startLedger(t)
	l.mem(map[string]any{"memory_type": "knowledge", "content": "a reader cannot promote this", "status": "candidate"})
	reader := l.token("rhea", "reader", nil)
	ctx := startBrowser(t)
	browserSignIn(t, ctx, l, reader)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(l.URL+"/ui/review"),
		chromedp.WaitVisible(chromedp.CSS("#review-readonly")),
	))
	content := browserText(t, ctx, "#queue tbody")
	buttons := browserRun(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("button.promote, button.reject, form.decide").length`))
	revertLinks := browserRun(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("a[href='/ui/revert']").length`))
	who := browserText(t, ctx, "#signed-in")
	require.Contains(t, content, "a reader cannot promote this")
	require.Zero(t, buttons)
	require.Zero(t, revertLinks)
	require.Contains(t, who, "rhea")
	require.Contains(t, who, "reader")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#signout")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.Navigate(l.URL+"/ui/review"),
		chromedp.WaitVisible(chromedp.CSS("#token")), // signed out: the sign-in form again
	))
}
