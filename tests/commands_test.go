package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEveryNoteIsBoundedAlike: every write that takes a note refuses one over the limit with
// the same 400 naming the note, and writes nothing.
func TestEveryNoteIsBoundedAlike(t *testing.T) {
	l := startLedger(t)
	l.expect(http.StatusCreated, "POST", "/projects", map[string]any{"id": "known"})
	doc := l.expect(http.StatusCreated, "POST", "/documents", map[string]any{"file_path": "a.md", "chunks": []map[string]any{{"content": "x"}}})
	var d struct {
		ID string `json:"id"`
	}
	doc.Decode(t, &d)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "c", "status": "candidate"})
	for _, size := range []int{2001, 5000, 1 << 19} {
		long := strings.Repeat("n", size)
		before := l.lastSeq()
		for _, w := range []struct {
			method, path string
			body         map[string]any
		}{
			{"POST", "/memory", map[string]any{"memory_type": "knowledge", "content": "c", "note": long}},
			{"POST", "/memory/" + m.ID + "/promote", map[string]any{"note": long}},
			{"POST", "/projects", map[string]any{"id": "new-project", "note": long}},
			{"PUT", "/projects/known", map[string]any{"description": "d", "note": long}},
			{"POST", "/project/state", map[string]any{"project": "known", "category": "fact", "key": "k", "value": "v", "note": long}},
			{"POST", "/documents", map[string]any{"file_path": "b.md", "note": long}},
			{"POST", "/documents/" + d.ID + "/chunks", map[string]any{"chunks": []map[string]any{{"content": "y"}}, "note": long}},
			{"POST", "/admin/harness", map[string]any{"passed": 1, "total": 2, "note": long}},
			{"POST", "/admin/memory/auto-promote", map[string]any{"note": long}},
		} {
			requireProblem(t, l.do(w.method, w.path, w.body), http.StatusBadRequest, "note", "maximum is 2000")
		}
		if size < 1<<15 { // a query string has room for a shorter one only
			requireProblem(t, l.do("DELETE", "/documents/"+d.ID+"?note="+long, nil), http.StatusBadRequest, "note", "maximum is 2000")
		}
		require.Equal(t, before, l.lastSeq(), "a refused note writes nothing (%d characters)", size)
	}
	require.Equal(t, http.StatusNotFound, l.do("GET", "/projects/new-project", nil).Status)
}

// TestMalformedIDIsTheSameAnswerFromPageAndAPI: an id that no memory can have is not found,
// whether the decision comes from the review page or from the API.
func TestMalformedIDIsTheSameAnswerFromPageAndAPI(t *testing.T) {
	l := startLedger(t)
	for _, id := range []string{"a.b", "a*b", "nope"} {
		api := l.do("POST", "/memory/"+url.PathEscape(id)+"/promote", nil)
		requireProblem(t, api, http.StatusNotFound, "")
		form := url.Values{"action": {"promote"}}.Encode()
		req, err := http.NewRequest("POST", l.URL+"/ui/review/"+url.PathEscape(id), strings.NewReader(form))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		page, err := client.Do(req)
		require.NoError(t, err)
		page.Body.Close()
		require.Equal(t, api.Status, page.StatusCode, "id %q", id)
	}
}

// TestOneActorCheck: a malformed actor is refused with the same problem, naming X-Actor, on
// every edge that takes one, and writes nothing.
func TestOneActorCheck(t *testing.T) {
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "c", "status": "candidate"})
	before := l.lastSeq()
	for _, w := range []struct {
		method, path string
		body         map[string]any
	}{
		{"POST", "/memory", map[string]any{"memory_type": "knowledge", "content": "c"}},
		{"POST", "/memory/" + m.ID + "/reinforce", nil},
		{"POST", "/projects", map[string]any{"id": "p"}},
		{"POST", "/project/state", map[string]any{"project": "p", "category": "fact", "key": "k", "value": "v"}},
		{"POST", "/documents", map[string]any{"file_path": "a.md"}},
		{"POST", "/admin/alerts", map[string]any{"severity": "info", "title": "t"}},
		{"POST", "/admin/harness", map[string]any{"passed": 1, "total": 2}},
		{"POST", "/admin/integrity/run", nil},
		{"POST", "/admin/memory/expire-candidates", nil},
	} {
		requireProblem(t, l.do(w.method, w.path, w.body, "X-Actor", "bad actor!"), http.StatusBadRequest, "X-Actor", "bad actor!")
	}
	require.Equal(t, before, l.lastSeq())
}

// TestAliasResolvedOnceOnCreate: a memory created under a project's alias is recorded under
// the project's id.
func TestAliasResolvedOnceOnCreate(t *testing.T) {
	l := startLedger(t)
	l.expect(http.StatusCreated, "POST", "/projects", map[string]any{"id": "memledger", "aliases": []string{"ml"}})
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "c", "project": "  ml "})
	require.Equal(t, "memledger", m.Project)
}
