package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dashEpoch is the time the dashboard tests' clock starts at.
var dashEpoch = time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)

// dashboard returns GET /admin/dashboard decoded, and as a generic map to check its shape.
func (l *ledger) dashboard() (handlers.Dashboard, map[string]any) {
	l.t.Helper()
	res := l.expect(http.StatusOK, "GET", "/admin/dashboard", nil)
	require.Equal(l.t, "application/json", res.Header.Get("Content-Type"))
	var d handlers.Dashboard
	res.Decode(l.t, &d)
	return d, res.JSON(l.t)
}

// uiGet fetches a web page without following redirects and returns its answer.
func (l *ledger) uiGet(method, path string, body any, headers ...string) response {
	l.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := sendTo(client, l.URL, method, path, body, headers...)
	require.NoError(l.t, err)
	return res
}

// uiHTML fetches a page that must answer 200 with HTML and returns its body.
func (l *ledger) uiHTML(path string) string {
	l.t.Helper()
	res := l.uiGet("GET", path, nil)
	require.Equal(l.t, http.StatusOK, res.Status, "GET %s: %s", path, res.Body)
	require.Equal(l.t, "text/html; charset=utf-8", res.Header.Get("Content-Type"), "GET %s", path)
	return string(res.Body)
}

// uiPostForm posts a urlencoded form the way a browser without JavaScript does (no Origin).
func (l *ledger) uiPostForm(path string, form url.Values, headers ...string) response {
	l.t.Helper()
	return l.uiGet("POST", path, form.Encode(), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, headers...)...)
}

// expectedMutation is a recent_audit row the dashboard must show.
type expectedMutation struct {
	seq                    uint64
	id                     string
	action                 domain.Action
	actor, note, timestamp string
	preview                string
}

// TestDashboardJSON builds a known history and checks every figure of GET /admin/dashboard.
func TestDashboardJSON(t *testing.T) {
	clk := newClock(dashEpoch)
	l := startLedger(t, withClock(clk.Now))

	// An empty ledger: zeros everywhere, every status and type present, no alert, no run.
	d, raw := l.dashboard()
	require.Equal(t, 0, d.Memories.Total)
	require.Equal(t, map[string]int{"candidate": 0, "active": 0, "superseded": 0, "invalid": 0}, d.Memories.ByStatus)
	require.Equal(t, map[string]int{"identity": 0, "preference": 0, "project": 0, "episodic": 0, "knowledge": 0, "adaptation": 0}, d.Memories.ByType)
	require.Empty(t, d.Memories.ByProject)
	require.Equal(t, []handlers.RecentMutation{}, d.RecentAudit)
	require.Equal(t, map[string]any{"info": nil, "warning": nil, "critical": nil}, raw["alerts"])
	require.Nil(t, raw["ledger"].(map[string]any)["last_nightly"])
	require.Equal(t, []any{}, raw["recent_audit"], "an empty list, not null")

	l.expect(http.StatusCreated, "POST", "/projects", map[string]any{"id": "p-1", "description": "the first project"})

	var muts []expectedMutation
	record := func(m domain.Memory, action domain.Action, actor, note string) domain.Memory {
		muts = append(muts, expectedMutation{seq: m.Seq, id: m.ID, action: action, actor: actor, note: note,
			timestamp: clk.Now().Format(time.RFC3339), preview: m.Content})
		return m
	}
	create := func(typ, content, project, status string) domain.Memory {
		clk.Advance(time.Minute)
		body := map[string]any{"memory_type": typ, "content": content, "project": project, "status": status}
		return record(l.mem(body), domain.ActionCreated, principal, "")
	}
	c1 := create("identity", "is called Ada", "p-1", "candidate")
	c2 := create("preference", "prefers dark mode", "", "candidate")
	c3 := create("project", "p-1 ships in June", "p-1", "candidate")
	a1 := create("episodic", "met the team on Monday", "p-1", "active")
	a2 := create("knowledge", "Go 1.26 is the toolchain", "", "active")
	r1 := create("adaptation", "answer in French", "p-1", "candidate")
	s1 := create("knowledge", "Go 1.25 is the toolchain", "", "active")
	clk.Advance(time.Minute)
	a1 = record(l.act("POST", "/memory/"+a1.ID+"/reinforce", nil, "X-Actor", "reinforcement"), domain.ActionReinforced, "reinforcement", "")
	clk.Advance(time.Minute)
	r1 = record(l.act("POST", "/memory/"+r1.ID+"/reject", map[string]any{"note": "not a preference"}, "X-Actor", "human-triage"),
		domain.ActionRejected, "human-triage", "not a preference")
	clk.Advance(time.Minute)
	s1 = record(l.act("POST", "/memory/"+s1.ID+"/supersede", map[string]any{"reason": "upgraded", "superseded_by": a2.ID}),
		domain.ActionSuperseded, principal, "upgraded")
	clk.Advance(time.Minute)
	long := "Go 1.26 is the toolchain of every service, pinned in go.mod and in CI, upgraded with the lead's approval only"
	a2 = record(l.act("PUT", "/memory/"+a2.ID, map[string]any{"content": long, "note": "more precise"}), domain.ActionUpdated, principal, "more precise")
	require.Equal(t, domain.StatusActive, a1.Status)
	require.Equal(t, 1, a1.ReferenceCount)
	require.Equal(t, domain.StatusInvalid, r1.Status)
	require.Equal(t, domain.StatusSuperseded, s1.Status)
	require.Len(t, muts, 11)

	// Project state: two entries, one under an unregistered project (an integrity finding),
	// and one invalidated.
	clk.Advance(time.Minute)
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "p-1", "category": "decision", "key": "store", "value": "bbolt"})
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "ghost", "category": "fact", "key": "owner", "value": "nobody"})
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "p-1", "category": "milestone", "key": "beta", "value": "May"})
	l.expect(http.StatusOK, "DELETE", "/project/state", map[string]any{"project": "p-1", "category": "milestone", "key": "beta"})

	// A warning and a critical alert; the nightly run's integrity step raises a later warning.
	clk.Advance(time.Minute)
	var warning, critical domain.Alert
	l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"severity": "warning", "title": "Disk 85% full", "message": "/var is filling up"}).Decode(t, &warning)
	clk.Advance(time.Minute)
	l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"severity": "critical", "title": "Backup failed", "message": "no backup for 3 days"}).Decode(t, &critical)
	clk.Advance(time.Minute)
	var run domain.NightlyRan
	l.expect(http.StatusOK, "POST", "/admin/nightly/run", nil).Decode(t, &run)
	require.Len(t, run.Steps, 4)
	for _, s := range run.Steps {
		require.Equal(t, domain.StepOK, s.Status, "step %s: %s", s.Name, s.Error)
	}

	h := l.health()
	d, raw = l.dashboard()

	t.Run("memories", func(t *testing.T) {
		require.Equal(t, 7, d.Memories.Total)
		require.Equal(t, map[string]int{"candidate": 3, "active": 2, "superseded": 1, "invalid": 1}, d.Memories.ByStatus)
		require.Equal(t, map[string]int{"identity": 1, "preference": 1, "project": 1, "episodic": 1, "knowledge": 2, "adaptation": 1}, d.Memories.ByType)
		require.Equal(t, map[string]int{"p-1": 4, "": 3}, d.Memories.ByProject)
		require.Equal(t, 1, d.Reinforced)
		require.EqualValues(t, 1, raw["reinforced"])
	})

	t.Run("project state", func(t *testing.T) {
		// p-1/decision/store, ghost/fact/owner, and the derived atocore/alert/last_warning,
		// atocore/alert/last_critical (no info was raised) and atocore/status/integrity_check_result.
		require.Equal(t, projections.StateCounts{
			Total:      5,
			Invalid:    1,
			ByProject:  map[string]int{"p-1": 1, "ghost": 1, "atocore": 3},
			ByCategory: map[string]int{"decision": 1, "fact": 1, "alert": 2, "status": 1},
		}, d.ProjectState)
	})

	t.Run("integrity", func(t *testing.T) {
		require.Equal(t, 1, d.Integrity.Total)
		require.Equal(t, map[string]int{"missing_source_chunk": 0, "duplicate_active_memory": 0, "state_unknown_project": 1, "orphaned_chunk": 0}, d.Integrity.Counts)
		require.Equal(t, []domain.Finding{{Check: "state_unknown_project", Project: "ghost", Category: "fact", Key: "owner"}}, d.Integrity.Findings)
		require.Equal(t, h.LastSeq, d.Integrity.AtSeq)
	})

	t.Run("alerts", func(t *testing.T) {
		require.Equal(t, []string{"critical", "info", "warning"}, dashKeys(raw["alerts"].(map[string]any)))
		require.Nil(t, raw["alerts"].(map[string]any)["info"])
		require.Nil(t, d.Alerts[domain.SeverityInfo])
		require.NotNil(t, d.Alerts[domain.SeverityCritical])
		require.Equal(t, critical, *d.Alerts[domain.SeverityCritical])
		w := d.Alerts[domain.SeverityWarning]
		require.NotNil(t, w)
		require.NotEqual(t, warning.ID, w.ID, "the integrity run's warning came later")
		require.Equal(t, "Integrity check found problems", w.Title)
		require.Equal(t, "integrity-check", w.Actor)
		require.Greater(t, w.Seq, critical.Seq)
		require.EqualValues(t, 1, w.Context["total"])
		require.EqualValues(t, 1, w.Context["state_unknown_project"])
		var list struct {
			Last map[string]*domain.Alert `json:"last"`
		}
		l.expect(http.StatusOK, "GET", "/admin/alerts", nil).Decode(t, &list)
		require.Equal(t, *list.Last["warning"], *w, "the dashboard agrees with GET /admin/alerts")
		require.Equal(t, *list.Last["critical"], critical)
	})

	t.Run("recent audit", func(t *testing.T) {
		want := reversed(muts)[:10]
		require.Equal(t, c2.ID, want[9].id, "the first create (c1) fell off the list")
		require.NotEqual(t, c1.ID, d.RecentAudit[9].MemoryID)
		want[0].preview = string([]rune(long)[:79]) + "…"
		var got []expectedMutation
		for _, r := range d.RecentAudit {
			got = append(got, expectedMutation{seq: r.Seq, id: r.MemoryID, action: r.Action, actor: r.Actor,
				note: r.Note, timestamp: r.Timestamp, preview: r.Preview})
		}
		require.Equal(t, want, got)
		require.Equal(t, 80, len([]rune(d.RecentAudit[0].Preview)))
		require.Equal(t, c3.Content, d.RecentAudit[8].Preview)
	})

	t.Run("ledger", func(t *testing.T) {
		require.Equal(t, h.LastSeq, d.Ledger.LastSeq)
		require.NotEmpty(t, d.Ledger.Projections)
		require.Equal(t, dashKeys(h.Projections), dashKeys(d.Ledger.Projections), "the projections /health names")
		for name, p := range d.Ledger.Projections {
			require.Equal(t, handlers.ProjectionStatus{Checkpoint: h.LastSeq, Lag: 0}, p, "projection %s", name)
		}
		var last projections.NightlyRun
		require.NoError(t, json.Unmarshal(d.Ledger.LastNightly, &last), "last_nightly: %s", d.Ledger.LastNightly)
		require.Equal(t, clk.Now().Format(time.DateOnly), last.Night)
		require.Equal(t, "nightly", last.Actor)
		require.Equal(t, h.LastSeq, last.Seq, "the run is the last event")
		var names []string
		for _, s := range last.Steps {
			names = append(names, s.Name)
			require.Equal(t, domain.StepOK, s.Status)
		}
		require.Equal(t, []string{"auto-promote", "expire-candidates", "pipeline-rules", "integrity"}, names)
	})

	t.Run("the page shows the same figures", func(t *testing.T) {
		body := l.uiHTML("/ui/")
		for id, n := range map[string]int{"count-total": 7, "count-candidate": 3, "count-active": 2, "count-superseded": 1,
			"count-invalid": 1, "count-reinforced": 1, "count-state": 5} {
			require.Contains(t, body, fmt.Sprintf(`id="%s">%d<`, id, n))
		}
		require.Contains(t, body, fmt.Sprintf(`<strong id="last-seq">%d</strong>`, h.LastSeq))
		require.Contains(t, body, `state_unknown_project: 1`)
		require.Contains(t, body, "ghost/fact/owner")
		require.Contains(t, body, `class="alert severity-info none"`)
		require.Contains(t, body, "Backup failed")
		require.Contains(t, body, "Integrity check found problems")
		require.Contains(t, body, `href="/ui/memory/`+a2.ID+`"`)
		require.Contains(t, body, "Last nightly run: "+clk.Now().Format(time.DateOnly))
	})
}

func dashKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestUIRootRedirectsAndAssets: / sends the browser to /ui/; the assets are embedded.
func TestUIRootRedirectsAndAssets(t *testing.T) {
	l := startLedger(t)
	res := l.uiGet("GET", "/", nil)
	require.Equal(t, http.StatusFound, res.Status)
	require.Equal(t, "/ui/", res.Header.Get("Location"))
	body := l.uiHTML("/ui/")
	require.Contains(t, body, `<script src="/ui/static/app.js" defer></script>`)
	require.Contains(t, body, `<link rel="stylesheet" href="/ui/static/app.css">`)
	for path, ct := range map[string]string{"/ui/static/app.js": "javascript", "/ui/static/app.css": "text/css"} {
		res := l.uiGet("GET", path, nil)
		require.Equal(t, http.StatusOK, res.Status, path)
		require.Contains(t, res.Header.Get("Content-Type"), ct, path)
		require.NotEmpty(t, res.Body, path)
	}
	require.NotContains(t, string(l.uiGet("GET", "/ui/static/app.js", nil).Body), "X-Actor", "the pages' writes are the signed-in principal's")
	require.Equal(t, http.StatusNotFound, l.uiGet("GET", "/ui/static/nope.js", nil).Status)
	require.Equal(t, http.StatusNotFound, l.uiGet("GET", "/ui/memory/no-such-memory", nil).Status)
}

// TestUIEscapesUserText: whatever users wrote reaches the pages as text, never as markup.
func TestUIEscapesUserText(t *testing.T) {
	l := startLedger(t)
	const evil = `<script>window.pwned=1</script>`
	const escaped = `&lt;script&gt;window.pwned=1&lt;/script&gt;`
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": evil, "status": "candidate", "domain_tags": []string{"<b>tag</b>"}})
	// The same text twice and active: a duplicate finding quotes the content on the dashboard.
	d1 := l.mem(map[string]any{"memory_type": "episodic", "content": evil})
	l.mem(map[string]any{"memory_type": "episodic", "content": evil})
	l.act("PUT", "/memory/"+d1.ID, map[string]any{"confidence": 0.5, "note": `<img src=x onerror="window.pwned=2">`})
	l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"severity": "critical", "title": `<iframe src="//evil">`, "message": evil})
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "ghost", "category": "fact", "key": `<svg onload=alert(1)>`, "value": "x"})

	pages := map[string]string{
		"/ui/":                "",
		"/ui/review":          "",
		"/ui/memory/" + m.ID:  "",
		"/ui/memory/" + d1.ID: "",
		"/ui/review?flash=" + url.QueryEscape(evil): "",
	}
	for path := range pages {
		body := l.uiHTML(path)
		pages[path] = body
		require.NotContains(t, body, "<script>window", path)
		require.NotContains(t, body, "<img src=x", path)
		require.NotContains(t, body, "<iframe", path)
		require.NotContains(t, body, "<svg", path)
		require.NotContains(t, body, "<b>tag", path)
		require.Equal(t, 1, strings.Count(body, "<script"), "%s: only the page's own script tag", path)
	}
	require.Contains(t, pages["/ui/"], escaped, "the recent-audit preview and the duplicate finding")
	require.Contains(t, pages["/ui/"], `&lt;iframe src=&#34;//evil&#34;&gt;`)
	require.Contains(t, pages["/ui/"], `&lt;svg onload=alert(1)&gt;`)
	require.Contains(t, pages["/ui/review"], escaped)
	require.Contains(t, pages["/ui/memory/"+m.ID], escaped)
	require.Contains(t, pages["/ui/memory/"+m.ID], "&lt;b&gt;tag&lt;/b&gt;")
	require.Contains(t, pages["/ui/memory/"+d1.ID], `&lt;img src=x onerror=&#34;window.pwned=2&#34;&gt;`, "the note")
	// A page shows no message of a link's making, escaped or not: only the review queue's own.
	require.NotContains(t, pages["/ui/review?flash="+url.QueryEscape(evil)], `class="flash"`)
	require.NotContains(t, l.uiHTML("/ui/?flash="+url.QueryEscape("Session expired: call 555")), `class="flash"`)
}

// TestUIReviewQueue: candidates oldest first, filters by project and type.
func TestUIReviewQueue(t *testing.T) {
	clk := newClock(dashEpoch)
	l := startLedger(t, withClock(clk.Now))
	var cs []domain.Memory
	for i, spec := range [][2]string{{"identity", "p-1"}, {"preference", ""}, {"identity", "p-2"}, {"identity", "p-1"}} {
		clk.Advance(time.Minute)
		cs = append(cs, l.mem(map[string]any{"memory_type": spec[0], "project": spec[1], "content": fmt.Sprintf("candidate %d", i), "status": "candidate"}))
	}
	active := l.mem(map[string]any{"memory_type": "identity", "project": "p-1", "content": "an active one"})

	rows := func(path string) []string {
		t.Helper()
		var out []string
		for _, m := range regexp.MustCompile(`<tr id="candidate-([0-9a-f-]+)"`).FindAllStringSubmatch(l.uiHTML(path), -1) {
			out = append(out, m[1])
		}
		return out
	}
	require.Equal(t, ids(cs...), rows("/ui/review"), "oldest first")
	require.NotContains(t, l.uiHTML("/ui/review"), active.ID)
	require.Contains(t, l.uiHTML("/ui/review"), `<small id="queue-count">4</small>`)
	require.Equal(t, ids(cs[0], cs[3]), rows("/ui/review?project=p-1"))
	require.Equal(t, ids(cs[0], cs[2], cs[3]), rows("/ui/review?memory_type=identity"))
	require.Equal(t, ids(cs[2]), rows("/ui/review?project=p-2&memory_type=identity"))
	require.Empty(t, rows("/ui/review?project=p-2&memory_type=episodic"))
	require.Contains(t, l.uiHTML("/ui/review?project=p-2&memory_type=episodic"), "No candidates waiting.")
	body := l.uiHTML("/ui/review?project=p-1&memory_type=identity")
	require.Contains(t, body, `<option value="p-1" selected>p-1</option>`)
	require.Contains(t, body, `<option value="identity" selected>identity</option>`)
	require.Equal(t, http.StatusBadRequest, l.uiGet("GET", "/ui/review?memory_type=bogus", nil).Status)
}

// TestUIReviewFormPost: the review queue without JavaScript posts a form and is sent back.
func TestUIReviewFormPost(t *testing.T) {
	l := startLedger(t)
	c := l.mem(map[string]any{"memory_type": "preference", "content": "likes green tea", "status": "candidate"})
	other := l.mem(map[string]any{"memory_type": "preference", "content": "likes black tea", "status": "candidate"})

	res := l.uiPostForm("/ui/review/"+c.ID, url.Values{"action": {"promote"}, "reason": {"ok"}})
	require.Equal(t, http.StatusSeeOther, res.Status, "body: %s", res.Body)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "/ui/review", loc.Path)
	require.Equal(t, c.ID+": promoted", loc.Query().Get("flash"))
	require.Equal(t, domain.StatusActive, l.get(c.ID).Status)
	entries := l.auditOf(c.ID)
	require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionPromoted}, actions(entries))
	require.Equal(t, principal, entries[1].Actor, "the signed-in reviewer, not a fixed name")
	require.Equal(t, "ok", entries[1].Note)
	back := l.uiHTML(res.Header.Get("Location"))
	require.Contains(t, back, `<p class="flash" role="status">`+c.ID+`: promoted</p>`)
	require.NotContains(t, back, `id="candidate-`+c.ID+`"`)
	require.Contains(t, back, `id="candidate-`+other.ID+`"`)

	t.Run("bad action", func(t *testing.T) {
		res := l.uiPostForm("/ui/review/"+other.ID, url.Values{"action": {"bogus"}})
		requireUIError(t, res, http.StatusBadRequest, "action:")
		require.Equal(t, domain.StatusCandidate, l.get(other.ID).Status)
		requireUIError(t, l.uiPostForm("/ui/review/"+other.ID, url.Values{}), http.StatusBadRequest, "action:")
	})
	t.Run("reject keeps the filters of the page it came from", func(t *testing.T) {
		res := l.uiPostForm("/ui/review/"+other.ID, url.Values{"action": {"reject"}, "return": {"/ui/review?memory_type=preference"}})
		require.Equal(t, http.StatusSeeOther, res.Status, "body: %s", res.Body)
		loc, err := url.Parse(res.Header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, "/ui/review", loc.Path)
		require.Equal(t, "preference", loc.Query().Get("memory_type"))
		// Not fatal, so that the checks below still run: handlers/ui.go builds the verb as
		// action+"d", which gives "rejectd".
		assert.Equal(t, other.ID+": rejected", loc.Query().Get("flash"), "the flash message's verb")
		require.Equal(t, domain.StatusInvalid, l.get(other.ID).Status)
		e := l.auditOf(other.ID)[1]
		require.Equal(t, domain.ActionRejected, e.Action)
		require.Equal(t, principal, e.Actor)
		require.Equal(t, "", e.Note)
	})
	t.Run("the return address stays on the review queue", func(t *testing.T) {
		x := l.mem(map[string]any{"memory_type": "preference", "content": "likes oolong", "status": "candidate"})
		res := l.uiPostForm("/ui/review/"+x.ID, url.Values{"action": {"promote"}, "return": {"https://evil.example/ui/review"}})
		require.Equal(t, http.StatusSeeOther, res.Status)
		require.True(t, strings.HasPrefix(res.Header.Get("Location"), "/ui/review?"), res.Header.Get("Location"))
	})
	t.Run("a decided memory is a conflict", func(t *testing.T) {
		requireUIError(t, l.uiPostForm("/ui/review/"+c.ID, url.Values{"action": {"reject"}}), http.StatusConflict)
		requireUIError(t, l.uiPostForm("/ui/review/nope", url.Values{"action": {"reject"}}), http.StatusNotFound)
	})
	t.Run("a cross-site form post is refused", func(t *testing.T) {
		y := l.mem(map[string]any{"memory_type": "preference", "content": "likes mate", "status": "candidate"})
		res := l.uiPostForm("/ui/review/"+y.ID, url.Values{"action": {"promote"}}, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
		require.Equal(t, http.StatusForbidden, res.Status)
		require.Equal(t, domain.StatusCandidate, l.get(y.ID).Status)
	})
}

// TestUIMemoryTimelineAndTimeTravel: the memory page's history, diff, link and ?at=.
func TestUIMemoryTimelineAndTimeTravel(t *testing.T) {
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "the original content", "domain_tags": []string{"a"}})
	newer := l.mem(map[string]any{"memory_type": "knowledge", "content": "the replacement"})
	u := l.act("PUT", "/memory/"+m.ID, map[string]any{"content": "the edited content", "note": "typo"}, "X-Actor", "human-triage")
	s := l.act("POST", "/memory/"+m.ID+"/supersede", map[string]any{"reason": "replaced", "superseded_by": newer.ID})

	body := l.uiHTML("/ui/memory/" + m.ID)
	require.Contains(t, body, `<td class="status-superseded" id="status">superseded</td>`)
	require.Contains(t, body, `<td id="content">the edited content</td>`)
	require.Contains(t, body, `<a id="superseded-by" href="/ui/memory/`+newer.ID+`">`+newer.ID+`</a>`)
	for _, seq := range []uint64{m.Seq, u.Seq, s.Seq} {
		require.Contains(t, body, fmt.Sprintf(`id="entry-%d"`, seq))
		require.Contains(t, body, fmt.Sprintf(`href="/ui/memory/%s?at=%d"`, m.ID, seq))
	}
	require.Contains(t, body, fmt.Sprintf(`<li class="entry selected" id="entry-%d">`, s.Seq), "the current state is the last entry")
	require.Contains(t, body, fmt.Sprintf(`<option value="%d" selected>`, s.Seq))
	require.Contains(t, body, `<span class="action action-updated">updated</span> by <span class="actor">human-triage</span>`)
	require.Contains(t, body, `<div class="note">typo</div>`)
	require.Contains(t, body, `<tr data-field="content"><th>content</th><td class="before">the original content</td><td class="after">the edited content</td></tr>`)
	require.Contains(t, body, `<tr data-field="status"><th>status</th><td class="before">active</td><td class="after">superseded</td></tr>`)
	require.Contains(t, body, `<tr data-field="superseded_by"><th>superseded_by</th><td class="before">—</td><td class="after">`+newer.ID+`</td></tr>`)
	require.NotContains(t, body, `id="asof"`)

	asOf := l.uiHTML(fmt.Sprintf("/ui/memory/%s?at=%d", m.ID, m.Seq))
	require.Contains(t, asOf, `<td id="content">the original content</td>`)
	require.Contains(t, asOf, `<td class="status-active" id="status">active</td>`)
	require.Contains(t, asOf, fmt.Sprintf(`id="asof">As of entry %d `, m.Seq))
	require.Contains(t, asOf, fmt.Sprintf(`<option value="%d" selected>`, m.Seq))
	require.NotContains(t, asOf, `id="superseded-by"`)
	require.Contains(t, l.uiHTML(fmt.Sprintf("/ui/memory/%s?at=%d", m.ID, u.Seq)), `<td id="content">the edited content</td>`)

	requireUIError(t, l.uiGet("GET", "/ui/memory/"+m.ID+"?at=999999", nil), http.StatusNotFound)
	requireUIError(t, l.uiGet("GET", fmt.Sprintf("/ui/memory/%s?at=%d", m.ID, newer.Seq), nil), http.StatusNotFound, "no history entry")
	requireUIError(t, l.uiGet("GET", "/ui/memory/"+m.ID+"?at=last", nil), http.StatusBadRequest, "at:")
}

// requireUIError checks a page's error answer: the status, an HTML page a person can read, and
// the fragments its detail holds.
func requireUIError(t *testing.T, res response, status int, details ...string) {
	t.Helper()
	require.Equal(t, status, res.Status, "body: %s", res.Body)
	require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"), "body: %s", res.Body)
	body := string(res.Body)
	require.Contains(t, body, fmt.Sprintf("<h1>%d ", status))
	for _, d := range details {
		require.Contains(t, body, d)
	}
}
