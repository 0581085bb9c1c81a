package tests

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/handlers/subscriptions"
)

// noToken is a header that makes the test transport send a request without the ledger's
// admin token (it is not sent itself).
const noToken = "X-Test-No-Token"

// dataDirs maps the host:port of each running ledger to its data directory, where its first
// start wrote the admin token.
var dataDirs sync.Map

// registerLedger lets requests to base carry the admin token of the ledger on data.
func registerLedger(base, data string) {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	dataDirs.Store(u.Host, data)
}

// adminToken is the admin token the ledger on data wrote at its first start.
func adminToken(t testing.TB, data string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "admin.token"))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// tokenTransport adds the admin token of the ledger a request goes to, unless the request
// has an Authorization header or asks for none with noToken: every test talks as the admin
// unless it says otherwise.
type tokenTransport struct{ next http.RoundTripper }

func (tt tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get(noToken) != "" {
		r = r.Clone(r.Context())
		r.Header.Del(noToken)
		return tt.next.RoundTrip(r)
	}
	if r.Header.Get("Authorization") == "" {
		if d, ok := dataDirs.Load(r.URL.Host); ok {
			if b, err := os.ReadFile(filepath.Join(d.(string), "admin.token")); err == nil {
				r = r.Clone(r.Context())
				r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
			}
		}
	}
	return tt.next.RoundTrip(r)
}

// token issues a token through the API and returns its secret.
func (l *ledger) token(name, role string, extra map[string]any) string {
	l.t.Helper()
	body := map[string]any{"name": name, "role": role}
	for k, v := range extra {
		body[k] = v
	}
	var v struct {
		Secret string `json:"secret"`
	}
	l.expect(http.StatusCreated, "POST", "/admin/tokens", body).Decode(l.t, &v)
	require.True(l.t, strings.HasPrefix(v.Secret, "mlt_"), v.Secret)
	return v.Secret
}

// startBrowserFor starts a browser signed in to l as its admin.
func startBrowserFor(t *testing.T, l *ledger) context.Context {
	t.Helper()
	ctx := startBrowser(t)
	browserSignIn(t, ctx, l, adminToken(t, l.cfg.Data))
	return ctx
}

// browserSignIn signs in to l's pages with token: a page opened without a session leads to
// the sign-in form.
func browserSignIn(t *testing.T, ctx context.Context, l *ledger, token string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(l.URL+"/ui/review"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#count-total")),
	))
}

// principal is the name of the token the harness sends by default (the first start's admin):
// the actor of every request that does not name another.
const principal = app.AdminTokenName

// joinDir returns a new data directory for another instance on first's log, as an operator
// prepares one: with first's admin.token and its server key file (the token digests are
// keyed with it, so every instance on one log needs the same file).
func joinDir(t testing.TB, first *ledger) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "admin.token"), []byte(adminToken(t, first.cfg.Data)+"\n"), 0o600))
	key, err := os.ReadFile(first.cfg.SubscriptionKeyPath())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, subscriptions.KeyFileName), key, 0o600))
	return dir
}
