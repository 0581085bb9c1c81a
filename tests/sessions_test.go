package tests

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/handlers/auth"
)

// signInForm posts the sign-in form with secret and returns the answer, not following its
// redirect.
func signInForm(t *testing.T, l *ledger, secret string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", l.URL+"/ui/signin", strings.NewReader(url.Values{"token": {secret}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(noToken, "1")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := noRedirects.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	return res
}

var noRedirects = &http.Client{Transport: tokenTransport{next: http.DefaultTransport},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// withCookie sends method path with the session cookie value (no token) and returns the
// status and the Location of a redirect.
func withCookie(t *testing.T, l *ledger, method, path, value string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, l.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set(noToken, "1")
	req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: value})
	res, err := noRedirects.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Location")
}

func sessionOf(t *testing.T, res *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range res.Cookies() {
		if c.Name == auth.SessionCookie {
			return c
		}
	}
	t.Fatalf("no session cookie in %v", res.Header)
	return nil
}

// The session cookie holds a random session id, never the token's secret; it is Secure over
// HTTPS (a proxy's X-Forwarded-Proto or Forwarded); sign-out ends the session on the server,
// and so do the token's revocation, its expiry and the session's own end.
func TestSessionCookie(t *testing.T) {
	clk := newClock(time.Now().UTC())
	l := startLedger(t, withClock(clk.Now))
	secret := l.token("rita", "reviewer", nil)

	// The sign-in page's stylesheet is one the server has.
	form := string(l.expect(http.StatusOK, "GET", "/ui/signin", nil, noToken, "1").Body)
	css := regexp.MustCompile(`<link rel="stylesheet" href="([^"]+)"`).FindStringSubmatch(form)
	require.NotNil(t, css, form)
	l.expect(http.StatusOK, "GET", css[1], nil, noToken, "1")

	res := signInForm(t, l, secret)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	c := sessionOf(t, res)
	require.True(t, strings.HasPrefix(c.Value, "mls_"), c.Value)
	require.NotContains(t, c.Value, strings.TrimPrefix(secret, "mlt_"), "the cookie holds no secret")
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.False(t, c.Secure, "plain HTTP, no proxy saying otherwise")
	require.Equal(t, int(auth.SessionTTL.Seconds()), c.MaxAge)
	status, _ := withCookie(t, l, "GET", "/ui/review", c.Value)
	require.Equal(t, http.StatusOK, status)
	status, _ = withCookie(t, l, "GET", "/memory", c.Value)
	require.Equal(t, http.StatusOK, status, "the API takes the session too")

	for _, h := range [][]string{{"X-Forwarded-Proto", "https"}, {"Forwarded", `for=192.0.2.1;proto=https;host=memory.example.org`}} {
		require.True(t, sessionOf(t, signInForm(t, l, secret, h...)).Secure, "behind a proxy that says %s", h)
	}

	// A cookie holding the token itself (as before) is no session.
	status, loc := withCookie(t, l, "GET", "/ui/review", secret)
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/ui/signin", loc)

	// Sign-out ends the session on the server: the same cookie, sent again, is refused.
	req, err := http.NewRequest("POST", l.URL+"/ui/signout", nil)
	require.NoError(t, err)
	req.Header.Set(noToken, "1")
	req.AddCookie(c)
	out, err := noRedirects.Do(req)
	require.NoError(t, err)
	out.Body.Close()
	require.Equal(t, http.StatusSeeOther, out.StatusCode)
	require.Equal(t, -1, sessionOf(t, out).MaxAge, "the browser's cookie is cleared")
	status, loc = withCookie(t, l, "GET", "/ui/review", c.Value)
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/ui/signin", loc)
	apiRes := l.do("GET", "/memory", nil, noToken, "1", "Cookie", auth.SessionCookie+"="+c.Value)
	requireProblem(t, apiRes, http.StatusUnauthorized, "", "the session has ended")

	// Revoking the token ends its sessions.
	c = sessionOf(t, signInForm(t, l, secret))
	status, _ = withCookie(t, l, "GET", "/ui/review", c.Value)
	require.Equal(t, http.StatusOK, status)
	l.expect(http.StatusOK, "DELETE", "/admin/tokens/rita", nil)
	apiRes = l.do("GET", "/memory", nil, noToken, "1", "Cookie", auth.SessionCookie+"="+c.Value)
	requireProblem(t, apiRes, http.StatusUnauthorized, "", "revoked")

	// A session ends after SessionTTL, and with its token's expiry.
	brief := l.token("brief", "reader", map[string]any{"expires_at": clk.Now().Add(time.Hour).Format(time.RFC3339)})
	long := l.token("long", "reader", nil)
	cb, cl := sessionOf(t, signInForm(t, l, brief)), sessionOf(t, signInForm(t, l, long))
	clk.Advance(2 * time.Hour)
	apiRes = l.do("GET", "/memory", nil, noToken, "1", "Cookie", auth.SessionCookie+"="+cb.Value)
	requireProblem(t, apiRes, http.StatusUnauthorized, "", "expired")
	status, _ = withCookie(t, l, "GET", "/ui/review", cl.Value)
	require.Equal(t, http.StatusOK, status)
	clk.Advance(auth.SessionTTL)
	apiRes = l.do("GET", "/memory", nil, noToken, "1", "Cookie", auth.SessionCookie+"="+cl.Value)
	requireProblem(t, apiRes, http.StatusUnauthorized, "", "the session has ended")
}
