package tests

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/auth"
)

// signOutWith posts the sign-out form with the session cookie value and returns the status.
func signOutWith(t *testing.T, l *ledger, value string) int {
	t.Helper()
	req, err := http.NewRequest("POST", l.URL+"/ui/signout", nil)
	require.NoError(t, err)
	req.Header.Set(noToken, "1")
	req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: value})
	res, err := noRedirects.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, -1, sessionOf(t, res).MaxAge, "the browser's cookie is cleared")
	return res.StatusCode
}

// promoteWith promotes memory id on the review page with the session cookie value and returns
// the status.
func promoteWith(t *testing.T, l *ledger, id, value string) int {
	t.Helper()
	req, err := http.NewRequest("POST", l.URL+"/ui/review/"+id, strings.NewReader(url.Values{"action": {"promote"}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(noToken, "1")
	req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: value})
	res, err := noRedirects.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	return res.StatusCode
}

// sessionStatus is the status of GET /memory with the session cookie value alone.
func sessionStatus(t *testing.T, l *ledger, value string) response {
	t.Helper()
	return l.do("GET", "/memory", nil, noToken, "1", "Cookie", auth.SessionCookie+"="+value)
}

// A session outlives a restart of the service on the same data directory: its cookie is signed
// with a key derived from the key file there, and checked against the log. A sign-out is in
// the log too, so it holds after the restart.
func TestSessionSurvivesRestart(t *testing.T) {
	l := startLedger(t)
	secret := l.token("rita", "reviewer", nil)
	c := sessionOf(t, signInForm(t, l, secret))
	status, _ := withCookie(t, l, "GET", "/ui/review", c.Value)
	require.Equal(t, http.StatusOK, status)

	l.restart()
	status, _ = withCookie(t, l, "GET", "/ui/review", c.Value)
	require.Equal(t, http.StatusOK, status, "the session holds after a restart")
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "promoted after a restart", "status": "candidate"})
	require.Equal(t, http.StatusSeeOther, promoteWith(t, l, m.ID, c.Value), "the review page's decision goes through")
	require.Equal(t, domain.StatusActive, l.get(m.ID).Status)

	require.Equal(t, http.StatusSeeOther, signOutWith(t, l, c.Value))
	requireProblem(t, sessionStatus(t, l, c.Value), http.StatusUnauthorized, "", "the session has ended (signed out)")
	l.restart()
	requireProblem(t, sessionStatus(t, l, c.Value), http.StatusUnauthorized, "", "the session has ended (signed out)")

	// The log records the sign-out, as the token, with the session's id and no secret.
	evs, _, err := l.Main.Store.Load(context.Background(), domain.KindToken, "rita")
	require.NoError(t, err)
	var outs []domain.Event
	for _, ev := range evs {
		if _, ok := ev.Data.(domain.TokenSignedOut); ok {
			outs = append(outs, ev)
		}
	}
	require.Len(t, outs, 1)
	require.Equal(t, "rita", outs[0].Actor)
	require.Equal(t, "rita", outs[0].Principal)
	require.Contains(t, c.Value, "."+outs[0].Data.(domain.TokenSignedOut).Session+".")

	// Another session of the same token is not signed out by it.
	c2 := sessionOf(t, signInForm(t, l, secret))
	l.expect(http.StatusOK, "GET", "/memory", nil, noToken, "1", "Cookie", auth.SessionCookie+"="+c2.Value)

	// A cookie changed by its holder (another token's name, a later end) is refused.
	parts := strings.Split(c2.Value, ".")
	for _, forged := range []string{
		strings.Replace(c2.Value, "mls_rita.", "mls_admin.", 1),
		strings.Join([]string{parts[0], parts[1], parts[2] + "9", parts[3]}, "."),
	} {
		requireProblem(t, sessionStatus(t, l, forged), http.StatusUnauthorized, "", "not")
	}
}

// On two instances on one log, a session made on one works on the other; a sign-out on one
// ends it on the other; revoking the token ends its sessions on both.
func TestSessionOnEveryInstance(t *testing.T) {
	c := startLedgerCluster(t, 2, nil)
	a, b := c.nodes[0], c.nodes[1]
	secret := a.token("rita", "reviewer", nil)
	caughtUp(t, b, a.lastSeq())

	ck := sessionOf(t, signInForm(t, a, secret))
	status, _ := withCookie(t, b, "GET", "/ui/review", ck.Value)
	require.Equal(t, http.StatusOK, status, "made on a, good on b")
	m := a.mem(map[string]any{"memory_type": "knowledge", "content": "promoted on the other instance", "status": "candidate"})
	caughtUp(t, b, a.lastSeq())
	require.Equal(t, http.StatusSeeOther, promoteWith(t, b, m.ID, ck.Value))
	caughtUp(t, a, b.lastSeq())
	audit := a.auditOf(m.ID)
	require.Equal(t, "rita", audit[len(audit)-1].Actor, "the reviewer signed in on a, deciding on b")

	// Sign-out on b: a refuses the cookie once it has applied the sign-out.
	require.Equal(t, http.StatusSeeOther, signOutWith(t, b, ck.Value))
	requireProblem(t, sessionStatus(t, b, ck.Value), http.StatusUnauthorized, "", "signed out")
	caughtUp(t, a, b.lastSeq())
	requireProblem(t, sessionStatus(t, a, ck.Value), http.StatusUnauthorized, "", "signed out")

	// Revoking the token on a ends its sessions on b.
	ck = sessionOf(t, signInForm(t, b, secret))
	a.expect(http.StatusOK, "GET", "/memory", nil, noToken, "1", "Cookie", auth.SessionCookie+"="+ck.Value)
	a.expect(http.StatusOK, "DELETE", "/admin/tokens/rita", nil)
	caughtUp(t, b, a.lastSeq())
	requireProblem(t, sessionStatus(t, b, ck.Value), http.StatusUnauthorized, "", "revoked")
	requireProblem(t, sessionStatus(t, a, ck.Value), http.StatusUnauthorized, "", "revoked")
}
