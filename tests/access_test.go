package tests

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
)

// route is one request of each route, and the role the route needs ("" for public ones).
type route struct {
	method, path, body string
	need               domain.Role
}

func routes(memID, docID string) []route {
	m := "/memory/" + memID
	return []route{
		{"GET", "/health", "", ""},
		{"GET", "/ui/signin", "", ""},
		{"GET", "/memory", "", domain.RoleReader},
		{"GET", "/memory/search?q=tea", "", domain.RoleReader},
		{"GET", m, "", domain.RoleReader},
		{"GET", m + "/audit", "", domain.RoleReader},
		{"GET", "/admin/audit/recent", "", domain.RoleReader},
		{"GET", "/admin/alerts", "", domain.RoleReader},
		{"GET", "/admin/alerts/watch", "", domain.RoleReader},
		{"GET", "/projects", "", domain.RoleReader},
		{"GET", "/projects/p-1", "", domain.RoleReader},
		{"GET", "/project/state?project=p-1", "", domain.RoleReader},
		{"GET", "/project/state/audit?project=p-1&category=c&key=k", "", domain.RoleReader},
		{"GET", "/documents/" + docID, "", domain.RoleReader},
		{"GET", "/admin/integrity", "", domain.RoleReader},
		{"GET", "/admin/nightly", "", domain.RoleReader},
		{"GET", "/admin/dashboard", "", domain.RoleReader},
		{"GET", "/metrics", "", domain.RoleReader},
		{"GET", "/ui/", "", domain.RoleReader},
		{"GET", "/ui/review", "", domain.RoleReader},
		{"GET", "/ui/search?q=tea", "", domain.RoleReader},
		{"GET", "/ui/memory/" + memID, "", domain.RoleReader},
		{"POST", "/memory", `{"memory_type":"knowledge","content":"from the table"}`, domain.RoleWriter},
		{"PUT", m, `{"content":"changed by the table"}`, domain.RoleWriter},
		{"POST", m + "/reinforce", `{}`, domain.RoleWriter},
		{"POST", m + "/supersede", `{}`, domain.RoleWriter},
		{"POST", m + "/invalidate", `{}`, domain.RoleWriter},
		{"DELETE", m, "", domain.RoleWriter},
		{"POST", m + "/promote", `{}`, domain.RoleReviewer},
		{"POST", m + "/reject", `{}`, domain.RoleReviewer},
		{"POST", "/ui/review/" + memID, "action=promote", domain.RoleReviewer},
		{"POST", "/projects", `{"id":"p-table"}`, domain.RoleWriter},
		{"PUT", "/projects/p-1", `{"description":"d"}`, domain.RoleWriter},
		{"POST", "/project/state", `{"project":"p-1","category":"c","key":"k","value":"v"}`, domain.RoleWriter},
		{"DELETE", "/project/state?project=p-1&category=c&key=k", "", domain.RoleWriter},
		{"POST", "/documents", `{"id":"doc-table","file_path":"a.md","chunks":[]}`, domain.RoleWriter},
		{"POST", "/documents/" + docID + "/chunks", `{"chunks":[{"content":"more"}]}`, domain.RoleWriter},
		{"DELETE", "/documents/" + docID, "", domain.RoleWriter},
		{"POST", "/admin/memory/auto-promote", `{}`, domain.RoleAdmin},
		{"POST", "/admin/memory/expire-candidates", `{}`, domain.RoleAdmin},
		{"POST", "/admin/alerts", `{"title":"from the table"}`, domain.RoleAdmin},
		{"POST", "/admin/harness", `{"passed":1,"total":2}`, domain.RoleAdmin},
		{"POST", "/admin/pipeline/check", `{}`, domain.RoleAdmin},
		{"POST", "/admin/integrity/run", "", domain.RoleAdmin},
		{"POST", "/admin/nightly/run", `{"step":"integrity"}`, domain.RoleAdmin},
		{"GET", "/admin/subscriptions", "", domain.RoleAdmin},
		{"POST", "/admin/subscriptions", `{"url":"http://127.0.0.1:1/hook"}`, domain.RoleAdmin},
		{"GET", "/admin/tokens", "", domain.RoleAdmin},
		{"POST", "/admin/tokens", `{"name":"from-table","role":"reader"}`, domain.RoleAdmin},
		{"DELETE", "/admin/tokens/nobody", "", domain.RoleAdmin},
		{"GET", "/", "", ""},
		{"POST", "/ui/signin", "token=mlt_x", ""},
		{"POST", "/ui/signout", "", ""},
		{"GET", "/ui/static/style.css", "", ""},
		{"GET", "/openapi.json", "", ""},
		{"GET", "/events?to=1", "", domain.RoleReader},
		{"GET", "/documents/" + docID, "", domain.RoleReader},
		{"POST", "/admin/alerts/redeliver", `{"since":"1h"}`, domain.RoleAdmin},
		{"GET", "/admin/subscriptions/sub-none", "", domain.RoleAdmin},
		{"POST", "/admin/subscriptions/sub-none/pause", `{}`, domain.RoleAdmin},
		{"POST", "/admin/subscriptions/sub-none/resume", `{}`, domain.RoleAdmin},
		{"POST", "/admin/subscriptions/sub-none/reset", `{"from":"now"}`, domain.RoleAdmin},
		{"DELETE", "/admin/subscriptions/sub-none", "", domain.RoleAdmin},
		{"POST", "/admin/backup", `{}`, domain.RoleAdmin},
		{"POST", "/admin/revert", `{"actor":"nobody-such"}`, domain.RoleAdmin},
		{"POST", "/admin/shadow", `{}`, domain.RoleAdmin},
		{"GET", "/ui/revert?actor=nobody-such", "", domain.RoleAdmin},
		{"POST", "/ui/revert", "confirm=yes&actor=nobody-such", domain.RoleAdmin},
	}
}

// TestRouteRoleTableCoversEveryRoute: the table of TestRouteRoleTable sends a request to
// every route the handlers register.
func TestRouteRoleTableCoversEveryRoute(t *testing.T) {
	table := routes("m-1", "doc-1")
	for _, reg := range registeredRoutes(t) {
		method, path, _ := strings.Cut(reg, " ")
		parts := strings.Split(path, "/")
		for i, p := range parts {
			if strings.HasPrefix(p, "{") {
				parts[i] = "[^/]+"
			} else {
				parts[i] = regexp.QuoteMeta(p)
			}
		}
		re := regexp.MustCompile("^" + strings.Join(parts, "/") + "$")
		found := false
		for _, r := range table {
			p, _, _ := strings.Cut(r.path, "?")
			if r.method == method && re.MatchString(p) {
				found = true
				break
			}
		}
		require.True(t, found, "the route table has no request to %s", reg)
	}
}

// call sends r with the Authorization header auth ("" for none) and returns the status and,
// for a refusal, the problem's detail. A stream's body is not read.
func call(t *testing.T, l *ledger, r route, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(r.method, l.URL+r.path, strings.NewReader(r.body))
	require.NoError(t, err)
	switch {
	case strings.HasPrefix(r.path, "/ui/review/"), r.path == "/ui/signin":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	case r.body != "":
		req.Header.Set("Content-Type", "application/json")
	}
	if auth == "" {
		req.Header.Set(noToken, "1")
	} else {
		req.Header.Set("Authorization", auth)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	if r.need == "" || (res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden) {
		return res.StatusCode, ""
	}
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	p := requireProblem(t, response{Status: res.StatusCode, Header: res.Header, Body: body}, res.StatusCode, "")
	return res.StatusCode, p.Detail
}

// Every route × every role, no token, a malformed header, a revoked and an expired token:
// allowed, 401 or 403 with a problem detail, and nothing written on a refusal.
func TestRouteRoleTable(t *testing.T) {
	clk := newClock(time.Now().UTC())
	l := startLedger(t, withClock(clk.Now))
	bearer := func(s string) string { return "Bearer " + s }
	tokens := map[domain.Role]string{}
	for _, r := range domain.Roles {
		tokens[r] = bearer(l.token("as-"+string(r), string(r), nil))
	}
	revoked := l.token("gone", "admin", nil)
	l.expect(http.StatusOK, "DELETE", "/admin/tokens/gone", nil)
	expired := l.token("brief", "admin", map[string]any{"expires_at": clk.Now().Add(time.Hour).Format(time.RFC3339)})
	clk.Advance(2 * time.Hour)

	refusals := map[string]struct {
		auth   string
		detail string
	}{
		"no token":      {"", "send a token"},
		"malformed":     {"Basic YWRtaW46YWRtaW4=", `must be "Bearer <token>"`},
		"empty bearer":  {"Bearer ", `must be "Bearer <token>"`},
		"unknown token": {bearer("mlt_not-a-token"), "not known"},
		"revoked token": {bearer(revoked), "revoked"},
		"expired token": {bearer(expired), "expired"},
	}
	l.expect(http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-1", "file_path": "d.md", "chunks": []any{}})
	mem := l.mem(map[string]any{"memory_type": "knowledge", "content": "tea", "status": "candidate"})
	for _, r := range routes(mem.ID, "doc-1") {
		for name, ref := range refusals {
			before := l.lastSeq()
			status, detail := call(t, l, r, ref.auth)
			if r.need == "" {
				// The sign-in form checks the token in its body (a 401 page for a wrong one), not the header.
				if r.path != "/ui/signin" || r.method != "POST" {
					require.NotEqual(t, http.StatusUnauthorized, status, "%s %s is public (%s)", r.method, r.path, name)
				}
				continue
			}
			if ref.auth == "" && r.method == "GET" && strings.HasPrefix(r.path, "/ui/") {
				// A person opening a page without a session is sent to sign in.
				require.Equal(t, http.StatusSeeOther, status, "%s %s with %s", r.method, r.path, name)
				require.Equal(t, before, l.lastSeq(), "%s %s with %s wrote nothing", r.method, r.path, name)
				continue
			}
			require.Equal(t, http.StatusUnauthorized, status, "%s %s with %s", r.method, r.path, name)
			require.Contains(t, detail, ref.detail, "%s %s with %s", r.method, r.path, name)
			require.Equal(t, before, l.lastSeq(), "%s %s with %s wrote nothing", r.method, r.path, name)
		}
		for _, role := range domain.Roles {
			before := l.lastSeq()
			status, detail := call(t, l, r, tokens[role])
			if r.need == "" || role.Allows(r.need) {
				if r.path != "/ui/signin" || r.method != "POST" {
					require.NotEqual(t, http.StatusUnauthorized, status, "%s %s as %s", r.method, r.path, role)
				}
				require.NotEqual(t, http.StatusForbidden, status, "%s %s as %s: %s", r.method, r.path, role, detail)
				continue
			}
			require.Equal(t, http.StatusForbidden, status, "%s %s as %s", r.method, r.path, role)
			require.Contains(t, detail, "needs the role "+string(r.need), "%s %s as %s", r.method, r.path, role)
			require.Equal(t, before, l.lastSeq(), "%s %s as %s wrote nothing", r.method, r.path, role)
		}
	}
}

// The actor of a write is the token's name; X-Actor names another only with the on-behalf
// right (an admin always has it), else the write is a 403 and nothing is written.
func TestActorIsThePrincipal(t *testing.T) {
	l := startLedger(t)
	writer := "Bearer " + l.token("assistant", "writer", nil)
	proxy := "Bearer " + l.token("proxy", "writer", map[string]any{"on_behalf": true})
	reviewer := "Bearer " + l.token("rita", "reviewer", nil)

	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "written by the assistant", "status": "candidate"}, "Authorization", writer)
	l.act("POST", "/memory/"+m.ID+"/reinforce", nil, "Authorization", writer)
	l.act("PUT", "/memory/"+m.ID, map[string]any{"content": "edited by the assistant"}, "Authorization", writer)
	before := l.lastSeq()
	res := l.do("POST", "/memory/"+m.ID+"/promote", nil, "Authorization", writer)
	requireProblem(t, res, http.StatusForbidden, "", "needs the role reviewer", "assistant")
	res = l.do("POST", "/memory/"+m.ID+"/reinforce", nil, "Authorization", writer, "X-Actor", "rita")
	requireProblem(t, res, http.StatusForbidden, "", `X-Actor "rita"`, "no right to act on behalf")
	require.Equal(t, before, l.lastSeq(), "nothing written on a refusal")
	l.act("POST", "/memory/"+m.ID+"/reinforce", nil, "Authorization", writer, "X-Actor", "assistant") // its own name is fine
	l.act("POST", "/memory/"+m.ID+"/reinforce", nil, "Authorization", proxy, "X-Actor", "chat-user-7")
	l.act("POST", "/memory/"+m.ID+"/promote", map[string]any{"note": "checked"}, "Authorization", reviewer)
	l.act("POST", "/memory/"+m.ID+"/supersede", nil, "Authorization", writer)

	var got []string
	for _, e := range l.auditOf(m.ID) {
		got = append(got, string(e.Action)+" by "+e.Actor+" through "+e.Principal)
	}
	require.Equal(t, []string{"created by assistant through assistant", "reinforced by assistant through assistant",
		"updated by assistant through assistant", "reinforced by assistant through assistant",
		"reinforced by chat-user-7 through proxy", "promoted by rita through rita", "superseded by assistant through assistant"}, got)
	// The history page names both when they differ.
	page := string(l.expect(http.StatusOK, "GET", "/ui/memory/"+m.ID, nil).Body)
	require.Contains(t, page, `<span class="actor">chat-user-7</span> <span class="principal">through proxy</span>`)
	require.Contains(t, page, `<span class="actor">rita</span>`)
	require.NotContains(t, page, "through rita")

	// Other kinds of writes too.
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "p-1", "category": "c", "key": "k", "value": "v"}, "Authorization", writer)
	var st struct {
		Entries []struct {
			Actor     string `json:"actor"`
			Principal string `json:"principal"`
		} `json:"entries"`
	}
	l.expect(http.StatusOK, "GET", "/project/state/audit?project=p-1&category=c&key=k", nil).Decode(t, &st)
	require.NotEmpty(t, st.Entries)
	require.Equal(t, "assistant", st.Entries[len(st.Entries)-1].Actor)
	require.Equal(t, "assistant", st.Entries[len(st.Entries)-1].Principal)
	a := alertRaise(t, l, map[string]any{"title": "by the admin"})
	require.Equal(t, principal, a.Actor)

	// Revocation takes effect on the next request.
	l.expect(http.StatusOK, "GET", "/memory/"+m.ID, nil, "Authorization", writer)
	l.expect(http.StatusOK, "DELETE", "/admin/tokens/assistant", nil)
	requireProblem(t, l.do("GET", "/memory/"+m.ID, nil, "Authorization", writer), http.StatusUnauthorized, "", "revoked")

	// The token list shows who issued what, never a secret or its digest.
	body := string(l.expect(http.StatusOK, "GET", "/admin/tokens", nil).Body)
	require.Contains(t, body, `"name":"assistant"`)
	require.Contains(t, body, `"issued_by":"admin"`)
	require.NotContains(t, body, "mlt_")
	require.NotContains(t, body, `"digest":`)
	require.Contains(t, body, `"digest_kind":"hmac-sha256"`, "only how the digest is made")
}

// Without a reader's token /health says only up or degraded.
func TestHealthWithoutToken(t *testing.T) {
	l := startLedger(t)
	res := l.do("GET", "/health", nil, noToken, "1")
	require.Equal(t, http.StatusOK, res.Status)
	require.Equal(t, map[string]any{"status": "ok"}, res.JSON(t))
	require.Contains(t, l.do("GET", "/health", nil).JSON(t), "last_seq", "a token sees the details")
}

// The first start writes the admin token 0600; --auth off is refused off loopback.
func TestFirstStartAndAuthOff(t *testing.T) {
	l := startLedger(t)
	st, err := os.Stat(filepath.Join(l.cfg.Data, "admin.token"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	tok := adminToken(t, l.cfg.Data)
	l.restart()
	require.Equal(t, tok, adminToken(t, l.cfg.Data), "a restart issues no new token")

	for addr, ok := range map[string]bool{"127.0.0.1:0": true, "localhost:0": true, "[::1]:0": true, "0.0.0.0:0": false, "192.0.2.1:0": false} {
		cfg := app.DefaultConfig()
		cfg.Addr, cfg.Data, cfg.NightlyAt, cfg.Auth = addr, t.TempDir(), "", app.AuthOff
		m := app.NewMain(cfg, slog.New(slog.DiscardHandler))
		err := m.Open(t.Context())
		if ok {
			if err != nil && strings.Contains(err.Error(), "listen") {
				continue // no IPv6 loopback here
			}
			require.NoError(t, err, addr)
			res, err := http.Get("http://" + m.Addr() + "/memory")
			require.NoError(t, err)
			res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode, "auth off answers without a token")
			_, err = os.Stat(filepath.Join(cfg.Data, "admin.token"))
			require.ErrorIs(t, err, os.ErrNotExist)
		} else {
			require.ErrorContains(t, err, "--auth off is allowed only on a loopback address", addr)
		}
		require.NoError(t, m.Close())
	}
}
