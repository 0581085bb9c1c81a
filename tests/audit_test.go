package tests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// auditEpoch is the time the clock-driven audit tests start at.
var auditEpoch = time.Date(2026, 4, 16, 21, 54, 10, 0, time.UTC)

// requireEntry checks the common fields of an audit entry against the memory it produced.
func requireEntry(t *testing.T, e projections.AuditEntry, after domain.Memory, action domain.Action, actor, note string) {
	t.Helper()
	require.Equal(t, action, e.Action)
	require.Equal(t, actor, e.Actor)
	require.Equal(t, note, e.Note)
	require.Equal(t, after.ID, e.MemoryID)
	require.Equal(t, after.Seq, e.Seq)
	require.NotEmpty(t, e.EventID)
	require.True(t, e.Timestamp.Equal(after.UpdatedAt), "timestamp %s, updated_at %s", e.Timestamp, after.UpdatedAt)
	require.Equal(t, after, *snapshot(t, e.After))
}

func TestAuditOfEachMutation(t *testing.T) {
	l := startLedger(t)

	t.Run("create", func(t *testing.T) {
		res := l.expect(http.StatusCreated, "POST", "/memory",
			map[string]any{"memory_type": "preference", "content": "prefers tabs", "project": "p-1", "note": "from chat"})
		var m domain.Memory
		res.Decode(t, &m)
		entries := l.auditOf(m.ID)
		require.Len(t, entries, 1)
		e := entries[0]
		requireEntry(t, e, m, domain.ActionCreated, principal, "from chat")
		require.JSONEq(t, "null", string(e.Before))
		require.JSONEq(t, string(res.Body), string(e.After), "after is the memory as created")
	})

	t.Run("promote", func(t *testing.T) {
		c := l.mem(map[string]any{"memory_type": "knowledge", "content": "uses Go", "status": "candidate"})
		m := l.act("POST", "/memory/"+c.ID+"/promote", map[string]any{"note": "looks right"}, "X-Actor", "human-triage")
		require.Equal(t, domain.StatusActive, m.Status)
		entries := l.auditOf(c.ID)
		require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionPromoted}, actions(entries))
		requireEntry(t, entries[1], m, domain.ActionPromoted, "human-triage", "looks right")
		require.Equal(t, c, *snapshot(t, entries[1].Before))
	})

	t.Run("reject", func(t *testing.T) {
		c := l.mem(map[string]any{"memory_type": "knowledge", "content": "uses Rust", "status": "candidate"})
		m := l.act("POST", "/memory/"+c.ID+"/reject", map[string]any{"note": "not true"}, "X-Actor", "human-triage")
		require.Equal(t, domain.StatusInvalid, m.Status)
		entries := l.auditOf(c.ID)
		require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionRejected}, actions(entries))
		requireEntry(t, entries[1], m, domain.ActionRejected, "human-triage", "not true")
		require.Equal(t, c, *snapshot(t, entries[1].Before))
	})

	t.Run("update", func(t *testing.T) {
		c := l.mem(map[string]any{"memory_type": "preference", "content": "old content", "domain_tags": []string{"a"}})
		m := l.act("PUT", "/memory/"+c.ID, map[string]any{"content": "new content", "domain_tags": []string{"B", "c"}})
		require.Equal(t, "new content", m.Content)
		require.Equal(t, []string{"b", "c"}, m.DomainTags)
		entries := l.auditOf(c.ID)
		require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionUpdated}, actions(entries))
		requireEntry(t, entries[1], m, domain.ActionUpdated, principal, "")
		before, after := snapshot(t, entries[1].Before), snapshot(t, entries[1].After)
		require.Equal(t, "old content", before.Content)
		require.Equal(t, []string{"a"}, before.DomainTags)
		require.Equal(t, "new content", after.Content)
		require.Equal(t, []string{"b", "c"}, after.DomainTags)
		require.Equal(t, c, *before)
	})

	t.Run("reinforce", func(t *testing.T) {
		c := l.mem(map[string]any{"memory_type": "preference", "content": "likes tea", "confidence": 0.5, "status": "candidate"})
		require.Equal(t, 0, c.ReferenceCount)
		require.Nil(t, c.LastReferencedAt)
		m := l.act("POST", "/memory/"+c.ID+"/reinforce", nil, "X-Actor", "reinforcement")
		require.InDelta(t, 0.55, m.Confidence, 1e-9)
		require.Equal(t, 1, m.ReferenceCount)
		require.NotNil(t, m.LastReferencedAt)
		require.True(t, m.LastReferencedAt.Equal(m.UpdatedAt))
		require.Equal(t, domain.StatusCandidate, m.Status)
		entries := l.auditOf(c.ID)
		require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionReinforced}, actions(entries))
		requireEntry(t, entries[1], m, domain.ActionReinforced, "reinforcement", "")
		require.InDelta(t, 0.5, snapshot(t, entries[1].Before).Confidence, 1e-9)
	})

	t.Run("invalidate", func(t *testing.T) {
		c := l.mem(map[string]any{"memory_type": "project", "content": "ships in May"})
		m := l.act("POST", "/memory/"+c.ID+"/invalidate", map[string]any{"reason": "date moved"})
		require.Equal(t, domain.StatusInvalid, m.Status)
		entries := l.auditOf(c.ID)
		require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionInvalidated}, actions(entries))
		requireEntry(t, entries[1], m, domain.ActionInvalidated, principal, "date moved")
	})

	t.Run("supersede", func(t *testing.T) {
		old := l.mem(map[string]any{"memory_type": "project", "content": "deadline is May 1"})
		repl := l.mem(map[string]any{"memory_type": "project", "content": "deadline is June 1"})
		seq := l.lastSeq()

		res := l.do("POST", "/memory/"+old.ID+"/supersede", map[string]any{"reason": "moved", "superseded_by": "no-such-memory"})
		requireProblem(t, res, http.StatusBadRequest, "superseded_by", "no-such-memory")
		res = l.do("POST", "/memory/"+old.ID+"/supersede", map[string]any{"reason": "moved", "superseded_by": old.ID})
		requireProblem(t, res, http.StatusBadRequest, "superseded_by", "itself")
		require.Equal(t, seq, l.lastSeq(), "a refused supersede writes nothing")
		require.Len(t, l.auditOf(old.ID), 1)

		m := l.act("POST", "/memory/"+old.ID+"/supersede", map[string]any{"reason": "moved", "superseded_by": repl.ID})
		require.Equal(t, domain.StatusSuperseded, m.Status)
		require.Equal(t, repl.ID, m.SupersededBy)
		entries := l.auditOf(old.ID)
		require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionSuperseded}, actions(entries))
		requireEntry(t, entries[1], m, domain.ActionSuperseded, principal, "moved")
		require.Empty(t, snapshot(t, entries[1].Before).SupersededBy)
		require.Equal(t, repl.ID, snapshot(t, entries[1].After).SupersededBy)
		require.Equal(t, domain.StatusActive, l.get(repl.ID).Status, "the replacement is untouched")
	})

	t.Run("status change through update is audited with its verb", func(t *testing.T) {
		c := l.mem(map[string]any{"memory_type": "knowledge", "content": "the CI runs on Linux", "status": "candidate"})
		m := l.act("PUT", "/memory/"+c.ID, map[string]any{"status": "active"}, "X-Actor", "human-triage")
		require.Equal(t, domain.StatusActive, m.Status)
		entries := l.auditOf(c.ID)
		require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionPromoted}, actions(entries))
		requireEntry(t, entries[1], m, domain.ActionPromoted, "human-triage", "")
	})

	t.Run("delete invalidates", func(t *testing.T) {
		c := l.mem(map[string]any{"memory_type": "episodic", "content": "met Bob on Monday"})
		m := l.act("DELETE", "/memory/"+c.ID, map[string]any{"reason": "obsolete"})
		require.Equal(t, domain.StatusInvalid, m.Status)
		got := l.get(c.ID)
		require.Equal(t, m, got, "a deleted memory is still there, invalid")
		entries := l.auditOf(c.ID)
		require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionInvalidated}, actions(entries))
		requireEntry(t, entries[1], m, domain.ActionInvalidated, principal, "obsolete")

		// Without a body too.
		c = l.mem(map[string]any{"memory_type": "episodic", "content": "met Alice on Tuesday"})
		m = l.act("DELETE", "/memory/"+c.ID, nil)
		require.Equal(t, domain.StatusInvalid, l.get(c.ID).Status)
		requireEntry(t, l.auditOf(c.ID)[1], m, domain.ActionInvalidated, principal, "")
	})

	t.Run("actor", func(t *testing.T) {
		c := l.mem(map[string]any{"memory_type": "identity", "content": "is called Ada"}, "X-Actor", "extractor-v2")
		entries := l.auditOf(c.ID)
		require.Equal(t, "extractor-v2", entries[0].Actor)

		seq := l.lastSeq()
		res := l.do("POST", "/memory", map[string]any{"memory_type": "identity", "content": "x"}, "X-Actor", "bad actor!")
		requireProblem(t, res, http.StatusBadRequest, "X-Actor", "bad actor!")
		res = l.do("POST", "/memory/"+c.ID+"/reinforce", nil, "X-Actor", "bad actor!")
		requireProblem(t, res, http.StatusBadRequest, "X-Actor")
		require.Equal(t, seq, l.lastSeq(), "nothing written")
		require.Len(t, l.auditOf(c.ID), 1)
	})

	t.Run("memory audit answer", func(t *testing.T) {
		c := l.mem(map[string]any{"memory_type": "preference", "content": "drinks coffee", "status": "candidate"})
		l.act("POST", "/memory/"+c.ID+"/reinforce", nil)
		l.act("PUT", "/memory/"+c.ID, map[string]any{"content": "drinks black coffee"})
		l.act("POST", "/memory/"+c.ID+"/promote", nil)
		res := l.expect(http.StatusOK, "GET", "/memory/"+c.ID+"/audit", nil)
		require.Equal(t, "application/json", res.Header.Get("Content-Type"))
		var raw map[string]json.RawMessage
		res.Decode(t, &raw)
		require.Len(t, raw, 2, "exactly memory_id and entries: %s", res.Body)
		require.JSONEq(t, `"`+c.ID+`"`, string(raw["memory_id"]))
		entries := l.auditOf(c.ID)
		require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionReinforced, domain.ActionUpdated, domain.ActionPromoted}, actions(entries))
		for i := 1; i < len(entries); i++ {
			require.Less(t, entries[i-1].Seq, entries[i].Seq, "oldest first")
			require.JSONEq(t, string(entries[i-1].After), string(entries[i].Before), "each before is the previous after")
		}
		require.Equal(t, l.get(c.ID), *snapshot(t, entries[len(entries)-1].After))

		res = l.do("GET", "/memory/no-such-memory/audit", nil)
		requireProblem(t, res, http.StatusNotFound, "", "no-such-memory")
	})
}

func TestRecentAudit(t *testing.T) {
	clk := newClock(auditEpoch)
	l := startLedger(t, withClock(clk.Now))

	// One mutation a minute, so every entry has its own time.
	step := func() { clk.Advance(time.Minute) }
	a := l.mem(map[string]any{"memory_type": "preference", "content": "a", "status": "candidate"}, "X-Actor", "extractor")
	step()
	b := l.mem(map[string]any{"memory_type": "preference", "content": "b", "status": "candidate"}, "X-Actor", "extractor")
	step()
	c := l.mem(map[string]any{"memory_type": "knowledge", "content": "c"})
	step()
	l.act("POST", "/memory/"+a.ID+"/promote", nil, "X-Actor", "human-triage")
	step()
	l.act("POST", "/memory/"+b.ID+"/reject", map[string]any{"note": "dup"}, "X-Actor", "human-triage")
	step()
	l.act("POST", "/memory/"+c.ID+"/reinforce", nil, "X-Actor", "reinforcement")
	step()
	l.act("POST", "/memory/"+a.ID+"/reinforce", nil, "X-Actor", "reinforcement")
	step()
	l.act("POST", "/memory/"+c.ID+"/invalidate", map[string]any{"reason": "stale"})

	all := l.recent(nil)
	require.Len(t, all, 8)
	type row struct {
		mem    string
		action domain.Action
		actor  string
		note   string
	}
	var got []row
	for i, e := range all {
		got = append(got, row{e.MemoryID, e.Action, e.Actor, e.Note})
		if i > 0 {
			require.Greater(t, all[i-1].Seq, e.Seq, "newest first")
			require.True(t, all[i-1].Timestamp.After(e.Timestamp))
		}
	}
	require.Equal(t, []row{
		{c.ID, domain.ActionInvalidated, principal, "stale"},
		{a.ID, domain.ActionReinforced, "reinforcement", ""},
		{c.ID, domain.ActionReinforced, "reinforcement", ""},
		{b.ID, domain.ActionRejected, "human-triage", "dup"},
		{a.ID, domain.ActionPromoted, "human-triage", ""},
		{c.ID, domain.ActionCreated, principal, ""},
		{b.ID, domain.ActionCreated, "extractor", ""},
		{a.ID, domain.ActionCreated, "extractor", ""},
	}, got)
	require.True(t, all[0].Timestamp.Equal(auditEpoch.Add(7*time.Minute)))
	require.True(t, all[7].Timestamp.Equal(auditEpoch))

	// The entries are the same as the memories' own audits.
	for _, e := range all {
		var found bool
		for _, own := range l.auditOf(e.MemoryID) {
			if own.Seq == e.Seq {
				require.Equal(t, own, e)
				found = true
			}
		}
		require.True(t, found, "entry %d is in the audit of %s", e.Seq, e.MemoryID)
	}

	seqs := func(es []projections.AuditEntry) []uint64 {
		out := []uint64{}
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	// filter keeps the entries of all that match, in all's order.
	filter := func(keep func(projections.AuditEntry) bool) []uint64 {
		out := []uint64{}
		for _, e := range all {
			if keep(e) {
				out = append(out, e.Seq)
			}
		}
		return out
	}

	cases := []struct {
		name  string
		q     url.Values
		match func(projections.AuditEntry) bool
		limit int
	}{
		{"action", url.Values{"action": {"reinforced"}}, func(e projections.AuditEntry) bool { return e.Action == domain.ActionReinforced }, 0},
		{"action created", url.Values{"action": {"created"}}, func(e projections.AuditEntry) bool { return e.Action == domain.ActionCreated }, 0},
		{"action none", url.Values{"action": {"expired"}}, func(e projections.AuditEntry) bool { return false }, 0},
		{"actor", url.Values{"actor": {"human-triage"}}, func(e projections.AuditEntry) bool { return e.Actor == "human-triage" }, 0},
		{"actor default", url.Values{"actor": {principal}}, func(e projections.AuditEntry) bool { return e.Actor == principal }, 0},
		{"actor unknown", url.Values{"actor": {"nobody"}}, func(e projections.AuditEntry) bool { return false }, 0},
		{"action and actor", url.Values{"action": {"created"}, "actor": {"extractor"}}, func(e projections.AuditEntry) bool {
			return e.Action == domain.ActionCreated && e.Actor == "extractor"
		}, 0},
		{"since", url.Values{"since": {auditEpoch.Add(3 * time.Minute).Format(time.RFC3339)}}, func(e projections.AuditEntry) bool {
			return !e.Timestamp.Before(auditEpoch.Add(3 * time.Minute))
		}, 0},
		{"since in another zone", url.Values{"since": {auditEpoch.Add(5 * time.Minute).In(time.FixedZone("X", -5*3600)).Format(time.RFC3339)}}, func(e projections.AuditEntry) bool {
			return !e.Timestamp.Before(auditEpoch.Add(5 * time.Minute))
		}, 0},
		{"since and action", url.Values{"since": {auditEpoch.Add(2 * time.Minute).Format(time.RFC3339)}, "action": {"created"}}, func(e projections.AuditEntry) bool {
			return e.Action == domain.ActionCreated && !e.Timestamp.Before(auditEpoch.Add(2*time.Minute))
		}, 0},
		{"since the future", url.Values{"since": {auditEpoch.Add(time.Hour).Format(time.RFC3339)}}, func(e projections.AuditEntry) bool { return false }, 0},
		{"limit", url.Values{"limit": {"3"}}, func(e projections.AuditEntry) bool { return true }, 3},
		{"limit and actor", url.Values{"limit": {"1"}, "actor": {"reinforcement"}}, func(e projections.AuditEntry) bool { return e.Actor == "reinforcement" }, 1},
		{"limit and since", url.Values{"limit": {"2"}, "since": {auditEpoch.Add(6 * time.Minute).Format(time.RFC3339)}}, func(e projections.AuditEntry) bool {
			return !e.Timestamp.Before(auditEpoch.Add(6 * time.Minute))
		}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := filter(tc.match)
			if tc.limit > 0 && len(want) > tc.limit {
				want = want[:tc.limit]
			}
			require.Equal(t, want, seqs(l.recent(tc.q)))
		})
	}

	// The default limit is 50, newest first.
	for i := range 55 {
		l.mem(map[string]any{"memory_type": "episodic", "content": "filler", "note": "n" + string(rune('a'+i%26))})
	}
	es := l.recent(nil)
	require.Len(t, es, 50)
	require.Equal(t, l.lastSeq(), es[0].Seq)
	require.Len(t, l.recent(url.Values{"limit": {"500"}}), 63)
}
