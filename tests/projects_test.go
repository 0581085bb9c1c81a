package tests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// The helpers of the projects, state, documents, integrity and nightly tests are prefixed pf
// so that they never collide with the helpers of other test files.

// pfExpect sends a request and requires the answer to have the given status.
func pfExpect(t *testing.T, l *ledger, status int, method, path string, body any, headers ...string) response {
	t.Helper()
	res := l.do(method, path, body, headers...)
	require.Equal(t, status, res.Status, "%s %s: body: %s", method, path, res.Body)
	return res
}

// pfLastSeq is the log position of the last event, from /health.
func pfLastSeq(t *testing.T, l *ledger) uint64 {
	t.Helper()
	var h struct {
		LastSeq uint64 `json:"last_seq"`
	}
	pfExpect(t, l, http.StatusOK, "GET", "/health", nil).Decode(t, &h)
	return h.LastSeq
}

// pfMemory creates a memory and returns it.
func pfMemory(t *testing.T, l *ledger, body map[string]any, headers ...string) domain.Memory {
	t.Helper()
	var m domain.Memory
	pfExpect(t, l, http.StatusCreated, "POST", "/memory", body, headers...).Decode(t, &m)
	require.NotEmpty(t, m.ID)
	return m
}

// pfMemoryIDs lists the ids of GET /memory with the query q.
func pfMemoryIDs(t *testing.T, l *ledger, q url.Values) []string {
	t.Helper()
	var page struct {
		Memories []domain.Memory `json:"memories"`
	}
	pfExpect(t, l, http.StatusOK, "GET", "/memory?"+q.Encode(), nil).Decode(t, &page)
	ids := []string{}
	for _, m := range page.Memories {
		ids = append(ids, m.ID)
	}
	return ids
}

// pfMemoryAudit returns the audit of memory id, oldest first.
func pfMemoryAudit(t *testing.T, l *ledger, id string) []projections.AuditEntry {
	t.Helper()
	var v struct {
		Entries []projections.AuditEntry `json:"entries"`
	}
	pfExpect(t, l, http.StatusOK, "GET", "/memory/"+id+"/audit", nil).Decode(t, &v)
	return v.Entries
}

// pfProject registers a project and returns it.
func pfProject(t *testing.T, l *ledger, id string, aliases ...string) domain.Project {
	t.Helper()
	var p domain.Project
	pfExpect(t, l, http.StatusCreated, "POST", "/projects",
		map[string]any{"id": id, "aliases": aliases, "description": "project " + id}).Decode(t, &p)
	return p
}

// pfGetProject returns GET /projects/{name}.
func pfGetProject(t *testing.T, l *ledger, name string) domain.Project {
	t.Helper()
	var p domain.Project
	pfExpect(t, l, http.StatusOK, "GET", "/projects/"+name, nil).Decode(t, &p)
	return p
}

// pfSetState upserts a state entry and returns the answer.
func pfSetState(t *testing.T, l *ledger, body map[string]any, headers ...string) domain.StateEntry {
	t.Helper()
	var e domain.StateEntry
	pfExpect(t, l, http.StatusOK, "POST", "/project/state", body, headers...).Decode(t, &e)
	return e
}

// pfState returns GET /project/state with the query q.
func pfState(t *testing.T, l *ledger, q url.Values) []domain.StateEntry {
	t.Helper()
	var v struct {
		Entries []domain.StateEntry `json:"entries"`
	}
	pfExpect(t, l, http.StatusOK, "GET", "/project/state?"+q.Encode(), nil).Decode(t, &v)
	return v.Entries
}

// pfStateAudit returns GET /project/state/audit with the query q.
func pfStateAudit(t *testing.T, l *ledger, q url.Values) []projections.StateAuditEntry {
	t.Helper()
	var v struct {
		Entries []projections.StateAuditEntry `json:"entries"`
	}
	pfExpect(t, l, http.StatusOK, "GET", "/project/state/audit?"+q.Encode(), nil).Decode(t, &v)
	return v.Entries
}

// pfEntry decodes a state audit entry's before or after (nil for null).
func pfEntry(t *testing.T, raw json.RawMessage) *domain.StateEntry {
	t.Helper()
	if string(raw) == "null" {
		return nil
	}
	var e domain.StateEntry
	require.NoError(t, json.Unmarshal(raw, &e), "entry: %s", raw)
	return &e
}

// pfQuery builds a query from name, value pairs.
func pfQuery(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// pfIntegrity returns the live integrity report.
func pfIntegrity(t *testing.T, l *ledger) domain.IntegrityReport {
	t.Helper()
	var r domain.IntegrityReport
	pfExpect(t, l, http.StatusOK, "GET", "/admin/integrity", nil).Decode(t, &r)
	total := 0
	for _, n := range r.Counts {
		total += n
	}
	require.Equal(t, total, r.Total, "counts %v", r.Counts)
	require.Len(t, r.Findings, r.Total)
	return r
}

// pfFindings returns the findings of one check.
func pfFindings(r domain.IntegrityReport, check string) []domain.Finding {
	out := []domain.Finding{}
	for _, f := range r.Findings {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

// pfAlerts returns GET /admin/alerts with the query q, newest first.
func pfAlerts(t *testing.T, l *ledger, q string) []domain.Alert {
	t.Helper()
	var v struct {
		Alerts []domain.Alert `json:"alerts"`
	}
	pfExpect(t, l, http.StatusOK, "GET", "/admin/alerts?limit=500&"+q, nil).Decode(t, &v)
	return v.Alerts
}

func TestProjectsRegisterGetListUpdate(t *testing.T) {
	l := startLedger(t)
	var p domain.Project
	pfExpect(t, l, http.StatusCreated, "POST", "/projects", map[string]any{
		"id": "memledger", "aliases": []string{"ml", " Memory-Ledger ", "ml", "memledger", ""}, "description": "  the ledger  ",
	}).Decode(t, &p)
	require.Equal(t, domain.Project{ID: "memledger", Aliases: []string{"ml", "memory-ledger"}, Description: "the ledger"}, p,
		"aliases are trimmed, lowercased and de-duplicated; the id itself is not an alias")
	pfProject(t, l, "atlas")

	var list struct {
		Projects []domain.Project `json:"projects"`
	}
	pfExpect(t, l, http.StatusOK, "GET", "/projects", nil).Decode(t, &list)
	require.Equal(t, []domain.Project{
		{ID: "atlas", Aliases: []string{}, Description: "project atlas"},
		p,
	}, list.Projects, "every project, by id")

	require.Equal(t, p, pfGetProject(t, l, "memledger"))
	require.Equal(t, p, pfGetProject(t, l, "ml"), "GET by alias returns the project")
	require.Equal(t, p, pfGetProject(t, l, "memory-ledger"))
	requireProblem(t, l.do("GET", "/projects/nope", nil), http.StatusNotFound, "")

	// PUT by alias, aliases only: the description stays.
	var u domain.Project
	pfExpect(t, l, http.StatusOK, "PUT", "/projects/ml", map[string]any{"aliases": []string{"ml", "ledger"}}).Decode(t, &u)
	require.Equal(t, domain.Project{ID: "memledger", Aliases: []string{"ml", "ledger"}, Description: "the ledger"}, u)
	require.Equal(t, u, pfGetProject(t, l, "ledger"), "a new alias resolves")
	requireProblem(t, l.do("GET", "/projects/memory-ledger", nil), http.StatusNotFound, "")

	// Description only: the aliases stay.
	pfExpect(t, l, http.StatusOK, "PUT", "/projects/memledger", map[string]any{"description": "new words"}).Decode(t, &u)
	require.Equal(t, domain.Project{ID: "memledger", Aliases: []string{"ml", "ledger"}, Description: "new words"}, u)

	// An update that changes nothing writes nothing.
	before := pfLastSeq(t, l)
	pfExpect(t, l, http.StatusOK, "PUT", "/projects/memledger", map[string]any{"aliases": []string{"ml", "ledger"}, "description": "new words"})
	require.Equal(t, before, pfLastSeq(t, l))

	// Every alias removed.
	pfExpect(t, l, http.StatusOK, "PUT", "/projects/ledger", map[string]any{"aliases": []string{}}).Decode(t, &u)
	require.Empty(t, u.Aliases)
	requireProblem(t, l.do("GET", "/projects/ml", nil), http.StatusNotFound, "")

	// The registry survives a restart.
	l.restart()
	require.Equal(t, u, pfGetProject(t, l, "memledger"))
}

func TestProjectsValidationAndAliasConflicts(t *testing.T) {
	l := startLedger(t)
	pfProject(t, l, "alpha", "a1", "a2")
	pfProject(t, l, "beta", "b1")
	before := pfLastSeq(t, l)

	for _, c := range []struct {
		body   map[string]any
		status int
		field  string
	}{
		{map[string]any{"id": "Bad_ID"}, http.StatusBadRequest, "id"},
		{map[string]any{"id": ""}, http.StatusBadRequest, "id"},
		{map[string]any{"id": "a-"}, http.StatusBadRequest, "id"},
		{map[string]any{"id": "atocore"}, http.StatusBadRequest, "id"},
		{map[string]any{"id": "gamma", "aliases": []string{"not ok"}}, http.StatusBadRequest, "aliases"},
		{map[string]any{"id": "gamma", "aliases": []string{"atocore"}}, http.StatusBadRequest, "aliases"},
		{map[string]any{"id": "gamma", "aliases": []int{1}}, http.StatusBadRequest, ""},
		{map[string]any{"id": "gamma", "unknown": true}, http.StatusBadRequest, "unknown"},
		{map[string]any{"id": "alpha"}, http.StatusConflict, ""},                                  // id taken
		{map[string]any{"id": "a1"}, http.StatusConflict, ""},                                     // id is another's alias
		{map[string]any{"id": "gamma", "aliases": []string{"beta"}}, http.StatusConflict, ""},     // alias is another's id
		{map[string]any{"id": "gamma", "aliases": []string{"ok", "A2"}}, http.StatusConflict, ""}, // alias is another's alias
	} {
		requireProblem(t, l.do("POST", "/projects", c.body), c.status, c.field)
	}
	// PUT conflicts: an alias taken by another project, by id or alias.
	requireProblem(t, l.do("PUT", "/projects/beta", map[string]any{"aliases": []string{"a1"}}), http.StatusConflict, "")
	requireProblem(t, l.do("PUT", "/projects/beta", map[string]any{"aliases": []string{"alpha"}}), http.StatusConflict, "")
	requireProblem(t, l.do("PUT", "/projects/b1", map[string]any{"aliases": []string{"B1", "x", "bad alias"}}), http.StatusBadRequest, "aliases")
	requireProblem(t, l.do("PUT", "/projects/beta", map[string]any{}), http.StatusBadRequest, "body")
	requireProblem(t, l.do("PUT", "/projects/nope", map[string]any{"description": "x"}), http.StatusNotFound, "")
	require.Equal(t, before, pfLastSeq(t, l), "refused commands write nothing")

	// A project may keep its own aliases, and an alias released by one project is free for another.
	pfExpect(t, l, http.StatusOK, "PUT", "/projects/alpha", map[string]any{"aliases": []string{"a1"}})
	pfExpect(t, l, http.StatusOK, "PUT", "/projects/beta", map[string]any{"aliases": []string{"b1", "a2"}})
	require.Equal(t, "beta", pfGetProject(t, l, "a2").ID)
	require.Equal(t, "alpha", pfGetProject(t, l, "a1").ID)
}

// A project id given with surrounding spaces is either refused or registered trimmed; the answer
// must say which, and agree with what was recorded.
func TestProjectsSpacedIDAnswerMatchesWhatWasRecorded(t *testing.T) {
	l := startLedger(t)
	res := l.do("POST", "/projects", map[string]any{"id": " spaced-id "})
	got := l.do("GET", "/projects/spaced-id", nil)
	switch {
	case res.Status == http.StatusCreated:
		require.Equal(t, http.StatusOK, got.Status, "answered 201 but nothing is registered")
		var p domain.Project
		res.Decode(t, &p)
		require.Equal(t, "spaced-id", p.ID)
	case res.Status == http.StatusBadRequest:
		require.Equal(t, http.StatusNotFound, got.Status, "answered 400 but the project is registered")
	default:
		t.Fatalf("POST /projects with a spaced id answered %d (%s); GET /projects/spaced-id answers %d: "+
			"the command was recorded but refused in the answer", res.Status, res.Body, got.Status)
	}
}

func TestAliasResolvesForMemories(t *testing.T) {
	l := startLedger(t)
	pfProject(t, l, "memledger", "ml")
	m1 := pfMemory(t, l, map[string]any{"memory_type": "project", "content": "uses NATS", "project": "ml"})
	require.Equal(t, "memledger", m1.Project, "the alias is stored as the canonical id")
	m2 := pfMemory(t, l, map[string]any{"memory_type": "project", "content": "uses bbolt", "project": "memledger"})
	pfMemory(t, l, map[string]any{"memory_type": "project", "content": "elsewhere", "project": "other"})

	want := []string{m2.ID, m1.ID}
	require.Equal(t, want, pfMemoryIDs(t, l, pfQuery("project", "memledger")))
	require.Equal(t, want, pfMemoryIDs(t, l, pfQuery("project", "ml")), "GET /memory?project=alias lists the canonical project's memories")

	// An alias added later resolves too, for writes and reads.
	pfExpect(t, l, http.StatusOK, "PUT", "/projects/memledger", map[string]any{"aliases": []string{"ml", "ledger"}})
	m3 := pfMemory(t, l, map[string]any{"memory_type": "project", "content": "has aliases", "project": "ledger"})
	require.Equal(t, "memledger", m3.Project)
	require.Equal(t, []string{m3.ID, m2.ID, m1.ID}, pfMemoryIDs(t, l, pfQuery("project", "ledger")))

	// A removed alias no longer resolves: it names a project of its own.
	pfExpect(t, l, http.StatusOK, "PUT", "/projects/memledger", map[string]any{"aliases": []string{"ledger"}})
	require.Empty(t, pfMemoryIDs(t, l, pfQuery("project", "ml")))
	m4 := pfMemory(t, l, map[string]any{"memory_type": "project", "content": "own project", "project": "ml"})
	require.Equal(t, "ml", m4.Project)
}

func TestAliasResolvesForState(t *testing.T) {
	l := startLedger(t)
	pfProject(t, l, "memledger", "ml")
	e := pfSetState(t, l, map[string]any{"project": "ml", "category": "decision", "key": "log", "value": "NATS JetStream"})
	require.Equal(t, "memledger", e.Project)
	require.Equal(t, domain.StateActive, e.Status)

	for _, name := range []string{"memledger", "ml"} {
		entries := pfState(t, l, pfQuery("project", name))
		require.Len(t, entries, 1, "GET /project/state?project=%s", name)
		require.Equal(t, "memledger", entries[0].Project)
		require.Equal(t, "NATS JetStream", entries[0].Value)
		audit := pfStateAudit(t, l, pfQuery("project", name, "category", "decision", "key", "log"))
		require.Len(t, audit, 1)
		require.Equal(t, "memledger", audit[0].Project)
	}

	// An upsert under the canonical id updates the entry written under the alias.
	pfSetState(t, l, map[string]any{"project": "memledger", "category": "decision", "key": "log", "value": "still NATS"})
	entries := pfState(t, l, pfQuery("project", "ml", "category", "decision"))
	require.Len(t, entries, 1)
	require.Equal(t, "still NATS", entries[0].Value)

	// An alias added by PUT resolves for state writes, reads and invalidation.
	pfExpect(t, l, http.StatusOK, "PUT", "/projects/ml", map[string]any{"aliases": []string{"ml", "ledger"}})
	e = pfSetState(t, l, map[string]any{"project": "ledger", "category": "fact", "key": "lang", "value": "Go"})
	require.Equal(t, "memledger", e.Project)
	require.Len(t, pfState(t, l, pfQuery("project", "memledger")), 2)
	pfExpect(t, l, http.StatusOK, "DELETE", "/project/state?project=ledger&category=fact&key=lang", nil)
	require.Len(t, pfState(t, l, pfQuery("project", "ml")), 1)

	require.Empty(t, pfFindings(pfIntegrity(t, l), domain.CheckUnknownProject),
		"state written under an alias belongs to a registered project")
}

// An alias may not hide memories or state already recorded under that name.
func TestAliasOverRecordedDataIsRefused(t *testing.T) {
	l := startLedger(t)
	l.create(map[string]any{"memory_type": "project", "content": "old notes", "project": "legacy"})
	res := l.do("POST", "/projects", map[string]any{"id": "p-new", "aliases": []string{"legacy"}})
	require.Equal(t, 409, res.Status, "%s", res.Body)
	require.Contains(t, res.JSON(t)["detail"], `recorded under project "legacy"`)
	require.Equal(t, 201, l.do("POST", "/projects", map[string]any{"id": "p-new"}).Status)
	require.Equal(t, 409, l.do("PUT", "/projects/p-new", map[string]any{"aliases": []string{"legacy"}}).Status)
	// Registering the name itself claims the data.
	require.Equal(t, 201, l.do("POST", "/projects", map[string]any{"id": "legacy"}).Status)
	require.Len(t, l.do("GET", "/memory?project=legacy", nil).JSON(t)["memories"], 1)
}
