package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

func TestStateUpsertAndAudit(t *testing.T) {
	l := startLedger(t)
	pfProject(t, l, "memledger")
	e1 := pfSetState(t, l, map[string]any{"project": "memledger", "category": "decision", "key": "log",
		"value": "NATS", "source": "design review", "confidence": 0.8, "note": "first"}, "X-Actor", "alice")
	require.Equal(t, "memledger", e1.Project)
	require.Equal(t, "decision", e1.Category)
	require.Equal(t, "log", e1.Key)
	require.Equal(t, "NATS", e1.Value)
	require.Equal(t, "design review", e1.Source)
	require.Equal(t, 0.8, e1.Confidence)
	require.Equal(t, domain.StateActive, e1.Status)
	require.NotZero(t, e1.Seq)

	e2 := pfSetState(t, l, map[string]any{"project": "memledger", "category": "decision", "key": "log",
		"value": "NATS JetStream", "note": "second"}, "X-Actor", "bob")
	require.Equal(t, "NATS JetStream", e2.Value)
	require.Equal(t, "", e2.Source)
	require.Equal(t, 1.0, e2.Confidence, "confidence defaults to 1")
	require.Greater(t, e2.Seq, e1.Seq)

	pfSetState(t, l, map[string]any{"project": "memledger", "category": "status", "key": "phase", "value": "beta"})
	entries := pfState(t, l, pfQuery("project", "memledger"))
	require.Len(t, entries, 2, "the upsert updated the entry, it did not add one")
	require.Equal(t, []string{"decision", "status"}, []string{entries[0].Category, entries[1].Category})
	require.Equal(t, e2, entries[0])
	decisions := pfState(t, l, pfQuery("project", "memledger", "category", "decision"))
	require.Equal(t, []domain.StateEntry{e2}, decisions, "the category filter")

	audit := pfStateAudit(t, l, pfQuery("project", "memledger", "category", "decision", "key", "log"))
	require.Len(t, audit, 2)
	require.Equal(t, projections.StateCreated, audit[0].Action)
	require.Equal(t, "alice", audit[0].Actor)
	require.Equal(t, "first", audit[0].Note)
	require.Nil(t, pfEntry(t, audit[0].Before), "created has no before")
	require.Equal(t, e1, *pfEntry(t, audit[0].After))
	require.Equal(t, e1.Seq, audit[0].Seq)
	require.Equal(t, projections.StateUpdated, audit[1].Action)
	require.Equal(t, "bob", audit[1].Actor)
	require.Equal(t, "second", audit[1].Note)
	require.Equal(t, e1, *pfEntry(t, audit[1].Before))
	require.Equal(t, e2, *pfEntry(t, audit[1].After))

	// The project's audit spans its keys, in log order.
	all := pfStateAudit(t, l, pfQuery("project", "memledger"))
	require.Len(t, all, 3)
	require.True(t, all[0].Seq < all[1].Seq && all[1].Seq < all[2].Seq)
	require.Len(t, pfStateAudit(t, l, pfQuery("project", "memledger", "category", "status")), 1)

	// The audit is rebuilt from the log: it survives a restart unchanged.
	l.restart()
	require.Equal(t, all, pfStateAudit(t, l, pfQuery("project", "memledger")))
}

func TestStateUnchangedUpsertWritesNothing(t *testing.T) {
	l := startLedger(t)
	body := map[string]any{"project": "p", "category": "fact", "key": "k", "value": "v", "source": "s"}
	e := pfSetState(t, l, body)
	before := pfLastSeq(t, l)

	require.Equal(t, e, pfSetState(t, l, body), "the answer is the entry as it stands")
	withConf := map[string]any{"project": "p", "category": "fact", "key": "k", "value": "v", "source": "s", "confidence": 1.0}
	pfSetState(t, l, withConf, "X-Actor", "someone-else")
	require.Equal(t, before, pfLastSeq(t, l), "an upsert that changes nothing writes nothing")
	require.Len(t, pfStateAudit(t, l, pfQuery("project", "p", "category", "fact", "key", "k")), 1)

	// A change of source or confidence alone is a change.
	body["source"] = "other"
	pfSetState(t, l, body)
	require.Equal(t, before+1, pfLastSeq(t, l))
	body["confidence"] = 0.5
	pfSetState(t, l, body)
	require.Equal(t, before+2, pfLastSeq(t, l))
}

func TestStateInvalidationKeepsHistory(t *testing.T) {
	l := startLedger(t)
	pfProject(t, l, "memledger")
	e := pfSetState(t, l, map[string]any{"project": "memledger", "category": "decision", "key": "log", "value": "NATS"})
	pfSetState(t, l, map[string]any{"project": "memledger", "category": "decision", "key": "db", "value": "bbolt"})

	// Invalidation named in the body.
	var inv domain.StateEntry
	pfExpect(t, l, http.StatusOK, "DELETE", "/project/state",
		map[string]any{"project": "memledger", "category": "decision", "key": "log", "note": "superseded by review"},
		"X-Actor", "carol").Decode(t, &inv)
	require.Equal(t, domain.StateInvalid, inv.Status)
	require.Equal(t, "NATS", inv.Value, "the value is kept")

	active := pfState(t, l, pfQuery("project", "memledger"))
	require.Len(t, active, 1)
	require.Equal(t, "db", active[0].Key)
	all := pfState(t, l, pfQuery("project", "memledger", "include_invalid", "true"))
	require.Len(t, all, 2)
	require.Equal(t, "db", all[0].Key)
	require.Equal(t, "log", all[1].Key)
	require.Equal(t, domain.StateInvalid, all[1].Status)
	require.Equal(t, "NATS", all[1].Value)
	require.Equal(t, inv, all[1])

	audit := pfStateAudit(t, l, pfQuery("project", "memledger", "category", "decision", "key", "log"))
	require.Len(t, audit, 2)
	require.Equal(t, []string{projections.StateCreated, projections.StateInvalidated}, []string{audit[0].Action, audit[1].Action})
	require.Equal(t, "carol", audit[1].Actor)
	require.Equal(t, "superseded by review", audit[1].Note)
	require.Equal(t, e, *pfEntry(t, audit[1].Before))
	require.Equal(t, inv, *pfEntry(t, audit[1].After))

	// Twice is a conflict; an unknown entry is not found; neither writes anything.
	before := pfLastSeq(t, l)
	requireProblem(t, l.do("DELETE", "/project/state", map[string]any{"project": "memledger", "category": "decision", "key": "log"}), http.StatusConflict, "")
	requireProblem(t, l.do("DELETE", "/project/state?project=memledger&category=decision&key=nope", nil), http.StatusNotFound, "")
	require.Equal(t, before, pfLastSeq(t, l))

	// Invalidation named in the query.
	pfExpect(t, l, http.StatusOK, "DELETE", "/project/state?project=memledger&category=decision&key=db", nil)
	require.Empty(t, pfState(t, l, pfQuery("project", "memledger")))

	// Setting an invalidated entry again makes it active, as an update.
	again := pfSetState(t, l, map[string]any{"project": "memledger", "category": "decision", "key": "log", "value": "NATS"})
	require.Equal(t, domain.StateActive, again.Status)
	audit = pfStateAudit(t, l, pfQuery("project", "memledger", "category", "decision", "key", "log"))
	require.Len(t, audit, 3)
	require.Equal(t, projections.StateUpdated, audit[2].Action)
	require.Equal(t, domain.StateInvalid, pfEntry(t, audit[2].Before).Status)
}

func TestStateValidation(t *testing.T) {
	l := startLedger(t)
	pfSetState(t, l, map[string]any{"project": "p", "category": "fact", "key": "k", "value": "v"})
	before := pfLastSeq(t, l)
	set := func(body map[string]any, status int, field string) {
		t.Helper()
		requireProblem(t, l.do("POST", "/project/state", body), status, field)
	}
	base := func(k, v string) map[string]any {
		b := map[string]any{"project": "p", "category": "fact", "key": "k", "value": "v"}
		b[k] = v
		return b
	}
	set(base("project", ""), http.StatusBadRequest, "project")
	set(base("project", "Not Kebab"), http.StatusBadRequest, "project")
	set(base("category", ""), http.StatusBadRequest, "category")
	set(base("category", "Decision"), http.StatusBadRequest, "category")
	set(base("category", "a b"), http.StatusBadRequest, "category")
	set(base("key", ""), http.StatusBadRequest, "key")
	set(base("key", " k"), http.StatusBadRequest, "key")
	set(base("key", strings.Repeat("k", 201)), http.StatusBadRequest, "key")
	set(base("value", ""), http.StatusBadRequest, "value")
	set(base("value", "   "), http.StatusBadRequest, "value")
	set(base("value", strings.Repeat("v", 20001)), http.StatusBadRequest, "value")
	set(base("source", strings.Repeat("s", 501)), http.StatusBadRequest, "source")
	withConf := base("key", "k")
	withConf["confidence"] = 1.5
	set(withConf, http.StatusBadRequest, "confidence")
	withConf["confidence"] = "high"
	set(withConf, http.StatusBadRequest, "confidence")
	set(base("unknown", "x"), http.StatusBadRequest, "unknown")
	// The system categories are derived from the log.
	set(map[string]any{"project": "atocore", "category": "alert", "key": "last_warning", "value": "x"}, http.StatusBadRequest, "category")
	set(map[string]any{"project": "atocore", "category": "status", "key": "integrity_check_result", "value": "x"}, http.StatusBadRequest, "category")
	requireProblem(t, l.do("DELETE", "/project/state?project=atocore&category=alert&key=last_warning", nil), http.StatusBadRequest, "category")
	requireProblem(t, l.do("DELETE", "/project/state", map[string]any{"project": "p", "category": "fact"}), http.StatusBadRequest, "key")
	requireProblem(t, l.do("DELETE", "/project/state?category=fact&key=k", nil), http.StatusBadRequest, "project")
	requireProblem(t, l.do("POST", "/project/state", "{"), http.StatusBadRequest, "body")
	requireProblem(t, l.do("POST", "/project/state", map[string]any{"project": "p", "category": "fact", "key": "k", "value": "v"}, "X-Actor", "bad actor"), http.StatusBadRequest, "X-Actor")
	// Reads.
	requireProblem(t, l.do("GET", "/project/state?category=fact", nil), http.StatusBadRequest, "category")
	requireProblem(t, l.do("GET", "/project/state?project=Bad", nil), http.StatusBadRequest, "project")
	requireProblem(t, l.do("GET", "/project/state?projet=p", nil), http.StatusBadRequest, "projet")
	requireProblem(t, l.do("GET", "/project/state/audit", nil), http.StatusBadRequest, "project")
	requireProblem(t, l.do("GET", "/project/state/audit?project=p&key=k", nil), http.StatusBadRequest, "key")
	require.Equal(t, before, pfLastSeq(t, l), "refused writes write nothing")

	// Other categories of the system project are ordinary entries.
	e := pfSetState(t, l, map[string]any{"project": "atocore", "category": "fact", "key": "owner", "value": "ops"})
	require.Equal(t, "atocore", e.Project)
}

func TestStateSystemEntriesDerivedFromAlerts(t *testing.T) {
	l := startLedger(t)
	var a domain.Alert
	pfExpect(t, l, http.StatusCreated, "POST", "/admin/alerts",
		map[string]any{"severity": "warning", "title": "disk", "message": "almost full"}).Decode(t, &a)
	pfExpect(t, l, http.StatusCreated, "POST", "/admin/alerts",
		map[string]any{"severity": "critical", "title": "down", "message": "db down"})
	var a2 domain.Alert
	pfExpect(t, l, http.StatusCreated, "POST", "/admin/alerts",
		map[string]any{"severity": "warning", "title": "disk again", "message": "fuller"}).Decode(t, &a2)

	entries := pfState(t, l, pfQuery("project", "atocore", "category", "alert"))
	require.Len(t, entries, 2)
	require.Equal(t, "last_critical", entries[0].Key)
	require.Equal(t, "last_warning", entries[1].Key)
	var last domain.Alert
	require.NoError(t, json.Unmarshal([]byte(entries[1].Value), &last))
	require.Equal(t, a2.ID, last.ID, "last_warning is the last warning")
	require.Equal(t, "disk again", last.Title)

	audit := pfStateAudit(t, l, pfQuery("project", "atocore", "category", "alert", "key", "last_warning"))
	require.Len(t, audit, 2)
	require.Equal(t, []string{projections.StateCreated, projections.StateUpdated}, []string{audit[0].Action, audit[1].Action})
	require.Equal(t, a.Seq, audit[0].Seq)
	require.Equal(t, a2.Seq, audit[1].Seq)
	require.Empty(t, pfIntegrity(t, l).Findings, "the system project needs no registration")
}

// DELETE /project/state takes the entry and the note from the query as from the body.
func TestStateInvalidateFromQuery(t *testing.T) {
	l := startLedger(t)
	pfSetState(t, l, map[string]any{"project": "p", "category": "fact", "key": "k", "value": "v"})
	pfExpect(t, l, http.StatusOK, "DELETE", "/project/state?project=p&category=fact&key=k&note=no+longer+true", nil)
	audit := pfStateAudit(t, l, pfQuery("project", "p", "category", "fact", "key", "k"))
	require.Len(t, audit, 2)
	require.Equal(t, projections.StateInvalidated, audit[1].Action)
	require.Equal(t, "no longer true", audit[1].Note)
}
