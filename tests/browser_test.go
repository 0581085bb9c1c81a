package tests

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

// screenshots makes TestScreenshots write the README's screenshots.
var screenshots = flag.Bool("screenshots", false, "write the README's screenshots to tests/testdata/screenshots")

// browserTimeout bounds a browser's whole life, so that a broken browser fails a test rather
// than hanging it.
const browserTimeout = 60 * time.Second

// chromiumPath finds the browser: CHROME_PATH, else chromium, chromium-browser or
// google-chrome on the PATH. Without one the test is skipped, and only then.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("MEMLEDGER_REQUIRE_BROWSER") != "" {
		t.Fatal("browser tests need Chromium and MEMLEDGER_REQUIRE_BROWSER is set: apt-get install chromium")
	}
	t.Skip("browser tests need Chromium: apt-get install chromium (CI installs it)")
	return ""
}

// startBrowser starts a headless Chromium with a fresh profile and returns the context of
// its first tab. The browser stops when the test ends, or after browserTimeout.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	profile := t.TempDir()
	root, cancelRoot := context.WithTimeout(context.Background(), browserTimeout)
	alloc, cancelAlloc := chromedp.NewExecAllocator(root,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for the browser to exit
		cancelRoot()
		// Chromium's helpers can write to the profile for a moment after it exits; empty it
		// here so that TempDir's own removal does not trip over them.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	require.NoError(t, chromedp.Do(ctx), "starting %s", path)
	return ctx
}

// browserRun runs a browser action and fails the test on error.
func browserRun[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	require.NoError(t, err)
	return v
}

// browserText is the rendered text of the first element that matches the CSS selector.
func browserText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return strings.TrimSpace(browserRun(t, ctx, chromedp.Text(chromedp.CSS(sel))))
}

// TestBrowserDashboard: the dashboard in a browser shows the figures of the JSON dashboard.
func TestBrowserDashboard(t *testing.T) {
	chromiumPath(t) // skip before starting anything when there is no browser
	l := startLedger(t)
	for i := range 3 {
		l.mem(map[string]any{"memory_type": "preference", "content": fmt.Sprintf("candidate %d", i), "status": "candidate", "project": "p-1"})
	}
	a := l.mem(map[string]any{"memory_type": "knowledge", "content": "uses bbolt"})
	l.act("POST", "/memory/"+a.ID+"/reinforce", nil)
	b := l.mem(map[string]any{"memory_type": "knowledge", "content": "uses SQLite"})
	l.act("POST", "/memory/"+b.ID+"/supersede", map[string]any{"superseded_by": a.ID})
	r := l.mem(map[string]any{"memory_type": "identity", "content": "is called Bob", "status": "candidate"})
	l.act("POST", "/memory/"+r.ID+"/reject", nil)
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "p-1", "category": "decision", "key": "db", "value": "bbolt"})
	l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"severity": "critical", "title": "Backup failed"})
	d, _ := l.dashboard()

	ctx := startBrowserFor(t, l)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(l.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#count-total"))))
	require.Equal(t, l.URL+"/ui/", browserRun(t, ctx, chromedp.Location()), "/ redirects to the dashboard")
	require.Equal(t, "Dashboard · memledger", browserRun(t, ctx, chromedp.Title()))

	figures := map[string]int{
		"#count-total":      d.Memories.Total,
		"#count-reinforced": d.Reinforced,
		"#count-state":      d.ProjectState.Total,
		"#last-seq":         int(d.Ledger.LastSeq),
	}
	for _, s := range domain.Statuses {
		figures["#count-"+string(s)] = d.Memories.ByStatus[string(s)]
	}
	require.Equal(t, 6, d.Memories.Total)
	require.Equal(t, map[string]int{"candidate": 3, "active": 1, "superseded": 1, "invalid": 1}, d.Memories.ByStatus)
	for sel, want := range figures {
		require.Equal(t, strconv.Itoa(want), browserText(t, ctx, sel), sel)
	}
	for _, typ := range domain.MemoryTypes {
		row := browserText(t, ctx, fmt.Sprintf("#by-type tr:nth-child(%d)", 1+dashIndex(domain.MemoryTypes, typ)))
		require.Equal(t, fmt.Sprintf("%s\t%d", typ, d.Memories.ByType[string(typ)]), row)
	}
	require.Contains(t, browserText(t, ctx, "#alerts .severity-critical"), "Backup failed")
	require.Equal(t, "info none", browserText(t, ctx, "#alerts .severity-info"))
	require.Equal(t, strconv.Itoa(len(d.RecentAudit)), browserRun(t, ctx, chromedp.Evaluate[string](
		`String(document.querySelectorAll("#recent-audit tbody tr").length)`)))
}

func dashIndex[T comparable](xs []T, x T) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// TestBrowserReviewPromote: a reviewer signs in; a decision in the review queue removes the
// row without reloading the page, the memory's page shows it, and the audit names that reviewer.
func TestBrowserReviewPromote(t *testing.T) {
	chromiumPath(t) // skip before starting anything when there is no browser
	l := startLedger(t)
	c := l.mem(map[string]any{"memory_type": "preference", "content": "likes green tea", "status": "candidate"})
	other := l.mem(map[string]any{"memory_type": "preference", "content": "likes black tea", "status": "candidate"})
	stale := l.mem(map[string]any{"memory_type": "preference", "content": "likes mate", "status": "candidate"})

	ctx := startBrowser(t)
	browserSignIn(t, ctx, l, l.token("rita", "reviewer", nil))
	row := "#candidate-" + c.ID
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(l.URL+"/ui/review"), chromedp.WaitVisible(chromedp.CSS(row))))
	require.Equal(t, "3", browserText(t, ctx, "#queue-count"))
	require.Equal(t, 1, browserRun(t, ctx, chromedp.Evaluate[int](`window.__stay = 1`)))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(row+" input[name=reason]"), "looks right"),
		chromedp.Click(chromedp.CSS(row+" button.promote")),
		chromedp.WaitNotPresent(chromedp.CSS(row)),
	))
	require.Equal(t, 1, browserRun(t, ctx, chromedp.Evaluate[int](`window.__stay`)), "the page was not reloaded")
	require.Equal(t, l.URL+"/ui/review", browserRun(t, ctx, chromedp.Location()))
	require.Equal(t, "2", browserText(t, ctx, "#queue-count"))
	require.Contains(t, browserText(t, ctx, "#candidate-"+other.ID), "likes black tea")

	m := l.get(c.ID)
	require.Equal(t, domain.StatusActive, m.Status)
	entries := l.auditOf(c.ID)
	require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionPromoted}, actions(entries))
	require.Equal(t, "rita", entries[1].Actor, "the signed-in reviewer")
	require.Equal(t, "looks right", entries[1].Note)

	t.Run("a refused decision shows the reason and keeps the row", func(t *testing.T) {
		// Decided elsewhere while the page was open.
		l.act("POST", "/memory/"+stale.ID+"/promote", nil)
		srow := "#candidate-" + stale.ID
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(srow+" button.reject")),
			chromedp.WaitVisible(chromedp.CSS(srow+" .error")),
		))
		require.Eventually(t, func() bool {
			return strings.Contains(browserText(t, ctx, srow+" .error"), "active")
		}, 10*time.Second, 50*time.Millisecond, "the conflict names the current status")
		require.Equal(t, domain.StatusActive, l.get(stale.ID).Status)
		require.Equal(t, 1, browserRun(t, ctx, chromedp.Evaluate[int](`window.__stay`)))
	})

	t.Run("the memory's page shows the decision", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(l.URL+"/ui/memory/"+c.ID), chromedp.WaitVisible(chromedp.CSS("#timeline"))))
		require.Equal(t, "active", browserText(t, ctx, "#status"))
		last := fmt.Sprintf("#entry-%d", m.Seq)
		require.Equal(t, "promoted", browserText(t, ctx, last+" .action"))
		require.Equal(t, "rita", browserText(t, ctx, last+" .actor"))
		require.Equal(t, "looks right", browserText(t, ctx, last+" .note"))
		require.Contains(t, browserText(t, ctx, "#timeline"), "promoted by rita")
		require.Equal(t, "active", browserText(t, ctx, last+` tr[data-field="status"] td.after`))
		require.Equal(t, "candidate", browserText(t, ctx, last+` tr[data-field="status"] td.before`))
	})
}

// TestBrowserMemoryDiffAndTimeTravel: a memory's page shows an update's before and after,
// and the time-travel select shows the state as of an earlier entry.
func TestBrowserMemoryDiffAndTimeTravel(t *testing.T) {
	chromiumPath(t) // skip before starting anything when there is no browser
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "the log is NATS; views are SQLite"})
	u := l.act("PUT", "/memory/"+m.ID, map[string]any{"content": "the log is NATS JetStream; views are bbolt", "note": "moved to bbolt"})

	ctx := startBrowserFor(t, l)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(l.URL+"/ui/memory/"+m.ID), chromedp.WaitVisible(chromedp.CSS("#timeline"))))
	require.Equal(t, u.Content, browserText(t, ctx, "#content"))
	update := fmt.Sprintf("#entry-%d", u.Seq)
	require.Equal(t, "updated", browserText(t, ctx, update+" .action"))
	require.Equal(t, "moved to bbolt", browserText(t, ctx, update+" .note"))
	require.Equal(t, m.Content, browserText(t, ctx, update+` tr[data-field="content"] td.before`))
	require.Equal(t, u.Content, browserText(t, ctx, update+` tr[data-field="content"] td.after`))
	require.Equal(t, 1, browserRun(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#entry-`+strconv.FormatUint(u.Seq, 10)+` .diff tbody tr").length`)),
		"only the content changed")
	require.Equal(t, strconv.FormatUint(u.Seq, 10), browserRun(t, ctx, chromedp.Value(chromedp.CSS("#at"))), "the current entry is selected")

	// Time travel: choose the create entry and submit.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#at"), strconv.FormatUint(m.Seq, 10)),
		chromedp.Click(chromedp.CSS("form.timetravel button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#asof")),
	))
	require.Equal(t, fmt.Sprintf("%s/ui/memory/%s?at=%d", l.URL, m.ID, m.Seq), browserRun(t, ctx, chromedp.Location()))
	require.Equal(t, m.Content, browserText(t, ctx, "#content"), "the original content")
	require.Contains(t, browserText(t, ctx, "#asof"), fmt.Sprintf("As of entry %d", m.Seq))
	require.Equal(t, strconv.FormatUint(m.Seq, 10), browserRun(t, ctx, chromedp.Value(chromedp.CSS("#at"))))

	// And back to the present through the link.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#asof a")),
		chromedp.WaitNotPresent(chromedp.CSS("#asof")),
	))
	// The old page's nodes can go away while the new one loads: read the content once the
	// present page is in place (the text is read again if its node was replaced under it).
	var present string
	require.Eventually(t, func() bool {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil || loc != fmt.Sprintf("%s/ui/memory/%s", l.URL, m.ID) {
			return false
		}
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#content")))
		present = strings.TrimSpace(text)
		return err == nil && present != ""
	}, 20*time.Second, 50*time.Millisecond, "the present page loads")
	require.Equal(t, u.Content, present)
}

// TestScreenshots writes the README's screenshots when run with -screenshots:
//
//	go test ./tests/ -run TestScreenshots -screenshots
func TestScreenshots(t *testing.T) {
	if !*screenshots {
		t.Skip("run with -screenshots to write tests/testdata/screenshots")
	}
	chromiumPath(t)
	clk := newClock(time.Date(2026, 4, 14, 8, 30, 0, 0, time.UTC))
	l := startLedger(t, withClock(clk.Now))
	step := func(d time.Duration) { clk.Advance(d) }
	for _, p := range []map[string]any{
		{"id": "memledger", "aliases": []string{"ml"}, "description": "the event-sourced memory ledger"},
		{"id": "home-lab", "description": "the servers in the basement"},
		{"id": "thesis", "description": "the PhD thesis on replicated state"},
	} {
		l.expect(http.StatusCreated, "POST", "/projects", p)
	}
	mem := func(typ, project, content, status string, tags ...string) domain.Memory {
		step(17 * time.Minute)
		body := map[string]any{"memory_type": typ, "project": project, "content": content, "status": status}
		if len(tags) > 0 {
			body["domain_tags"] = tags
		}
		return l.mem(body, "X-Actor", "extractor/chat")
	}
	mem("identity", "", "Works as a backend engineer; writes Go and Python every day.", "active")
	pref := mem("preference", "", "Prefers concise answers: code first, explanation after.", "active", "style")
	log := mem("project", "memledger", "The event log is NATS; the projections live in SQLite.", "active", "architecture", "storage")
	ansible := mem("project", "home-lab", "Deploys the home lab with Ansible playbooks.", "active")
	nix := mem("project", "home-lab", "Deploys the home lab with NixOS flakes.", "active")
	windows := mem("identity", "", "Uses Windows at home.", "candidate")
	mem("knowledge", "thesis", "Chapter 3 compares CRDTs with event sourcing for offline-first apps.", "candidate", "crdt")
	mem("episodic", "home-lab", "Replaced both NAS disks on 12 April after a SMART warning.", "candidate")
	mem("preference", "", "Likes dark themes in every editor and terminal.", "candidate")
	mem("adaptation", "", "Answers in French when the question is in French.", "candidate")
	mem("project", "home-lab", "The home lab runs Proxmox 9 on three nodes.", "candidate", "proxmox")
	mem("knowledge", "memledger", "Projections rebuild themselves when their version changes.", "candidate")

	step(2 * time.Hour)
	l.act("PUT", "/memory/"+log.ID, map[string]any{"content": "The event log is NATS JetStream (embedded); the projections live in bbolt.",
		"domain_tags": []string{"architecture", "storage", "nats"}, "note": "moved the projections to bbolt"}, "X-Actor", "human-triage")
	for range 3 {
		step(40 * time.Minute)
		l.act("POST", "/memory/"+pref.ID+"/reinforce", nil, "X-Actor", "reinforcement")
	}
	step(25 * time.Minute)
	l.act("POST", "/memory/"+log.ID+"/reinforce", map[string]any{"note": "cited in a design review"}, "X-Actor", "reinforcement")
	step(10 * time.Minute)
	l.act("POST", "/memory/"+windows.ID+"/reject", map[string]any{"note": "that was a colleague"}, "X-Actor", "human-triage")
	step(5 * time.Minute)
	l.act("POST", "/memory/"+ansible.ID+"/supersede", map[string]any{"reason": "migrated to NixOS", "superseded_by": nix.ID})

	step(time.Hour)
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "memledger", "category": "decision", "key": "log-store", "value": "NATS JetStream, embedded"})
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "thesis", "category": "milestone", "key": "draft-3", "value": "2026-06-30"})
	l.expect(http.StatusOK, "POST", "/project/state", map[string]any{"project": "old-site", "category": "config", "key": "hosting", "value": "shared host"})
	step(3 * time.Hour)
	l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"severity": "info", "title": "Backup completed", "message": "Nightly snapshot of the data directory: 41 MB."})
	step(2 * time.Hour)
	l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"severity": "critical", "title": "Extractor stopped", "message": "The chat extractor has sent nothing for 6 hours."})
	l.expect(http.StatusCreated, "POST", "/admin/harness", map[string]any{"passed": 34, "total": 41})
	step(4 * time.Hour)
	l.expect(http.StatusOK, "POST", "/admin/nightly/run", nil)

	dir := filepath.Join("testdata", "screenshots")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	ctx := startBrowserFor(t, l)
	for name, path := range map[string]string{"dashboard": "/ui/", "review": "/ui/review", "memory": "/ui/memory/" + log.ID} {
		png := browserRun(t, ctx, func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
			if _, err := chromedp.Steps(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(l.URL+path),
				chromedp.WaitVisible(chromedp.CSS("footer")))(ctx, tg); err != nil {
				return nil, err
			}
			return chromedp.FullScreenshot(100)(ctx, tg)
		})
		require.True(t, len(png) > 8 && string(png[1:4]) == "PNG", "%s is a PNG", name)
		require.Less(t, len(png), 300<<10, "%s.png is %d bytes", name, len(png))
		file := filepath.Join(dir, name+".png")
		require.NoError(t, os.WriteFile(file, png, 0o644))
		t.Logf("wrote %s (%d KB)", file, len(png)>>10)
	}
}
