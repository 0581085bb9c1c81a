package tests

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

func TestListFilters(t *testing.T) {
	l := startLedger(t)
	type spec struct {
		typ, project, status string
		then                 string // a mutation after the create
	}
	specs := []spec{
		{"preference", "p-a", "active", ""},
		{"knowledge", "p-a", "candidate", ""},
		{"preference", "p-b", "candidate", ""},
		{"project", "", "active", ""},
		{"knowledge", "p-b", "active", "invalidate"},
		{"preference", "p-a", "candidate", "promote"},
		{"knowledge", "", "candidate", "reject"},
		{"preference", "p-b", "active", "supersede"},
		{"episodic", "p-a", "active", ""},
		{"knowledge", "p-a", "candidate", "retype"},
		{"preference", "", "candidate", ""},
		{"knowledge", "p-b", "active", ""},
	}
	var all []domain.Memory // in creation order
	for i, s := range specs {
		m := l.mem(map[string]any{"memory_type": s.typ, "project": s.project, "status": s.status,
			"content": fmt.Sprintf("memory %d", i)})
		switch s.then {
		case "invalidate":
			m = l.act("POST", "/memory/"+m.ID+"/invalidate", nil)
		case "promote":
			m = l.act("POST", "/memory/"+m.ID+"/promote", nil)
		case "reject":
			m = l.act("POST", "/memory/"+m.ID+"/reject", nil)
		case "supersede":
			m = l.act("POST", "/memory/"+m.ID+"/supersede", map[string]any{"superseded_by": all[0].ID})
		case "retype":
			m = l.act("PUT", "/memory/"+m.ID, map[string]any{"memory_type": "adaptation"})
		}
		all = append(all, m)
	}

	// want is the memories matching q, newest (by creation) first.
	want := func(q url.Values) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			m := all[i]
			if (q.Get("status") == "" || string(m.Status) == q.Get("status")) &&
				(q.Get("memory_type") == "" || string(m.MemoryType) == q.Get("memory_type")) &&
				(q.Get("project") == "" || m.Project == q.Get("project")) {
				out = append(out, m.ID)
			}
		}
		return out
	}

	queries := []url.Values{{}}
	for _, st := range []string{"", "candidate", "active", "superseded", "invalid"} {
		for _, ty := range []string{"", "preference", "knowledge", "project", "episodic", "adaptation", "identity"} {
			for _, p := range []string{"", "p-a", "p-b", "p-c"} {
				q := url.Values{}
				if st != "" {
					q.Set("status", st)
				}
				if ty != "" {
					q.Set("memory_type", ty)
				}
				if p != "" {
					q.Set("project", p)
				}
				queries = append(queries, q)
			}
		}
	}
	nonEmpty := 0
	for _, q := range queries {
		w := want(q)
		if len(w) > 0 {
			nonEmpty++
		}
		p := l.list(q)
		require.Nil(t, p.NextCursor, "query %s", q.Encode())
		got := ids(p.Memories...)
		if len(got) == 0 {
			got = nil
		}
		require.Equal(t, w, got, "query %s", q.Encode())
		// The listed memories are the current state.
		for _, m := range p.Memories {
			require.Equal(t, l.get(m.ID), m)
		}
	}
	require.Greater(t, nonEmpty, 20, "the filters are exercised on non-empty answers")

	// A few spelled out, so that a wrong model above cannot hide a wrong answer.
	require.Equal(t, reversed(ids(all...)), ids(l.list(nil).Memories...))
	require.Equal(t, []string{all[11].ID, all[8].ID, all[5].ID, all[3].ID, all[0].ID}, ids(l.list(url.Values{"status": {"active"}}).Memories...))
	require.Equal(t, []string{all[5].ID, all[0].ID}, ids(l.list(url.Values{"status": {"active"}, "memory_type": {"preference"}, "project": {"p-a"}}).Memories...))
	require.Equal(t, []string{all[9].ID}, ids(l.list(url.Values{"memory_type": {"adaptation"}}).Memories...))
	require.Equal(t, []string{all[7].ID}, ids(l.list(url.Values{"status": {"superseded"}}).Memories...))
	require.Equal(t, []string{all[6].ID, all[4].ID}, ids(l.list(url.Values{"status": {"invalid"}}).Memories...))

	// The list answer's shape: an empty list is [], and next_cursor null.
	res := l.expect(http.StatusOK, "GET", "/memory?project=p-c", nil)
	require.JSONEq(t, `{"memories": [], "next_cursor": null}`, string(res.Body))
}

func TestListPagination(t *testing.T) {
	l := startLedger(t)
	var created []domain.Memory
	for i := range 23 {
		status := "active"
		if i%3 == 0 {
			status = "candidate"
		}
		created = append(created, l.mem(map[string]any{"memory_type": "episodic", "content": fmt.Sprintf("memory %d", i), "status": status}))
	}
	// Changes after creation do not move a memory in the order.
	l.act("PUT", "/memory/"+created[4].ID, map[string]any{"content": "changed"})
	l.act("POST", "/memory/"+created[0].ID+"/promote", nil)
	newestFirst := reversed(ids(created...))

	for _, limit := range []int{1, 2, 5, 7, 22, 23, 24, 500} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			var got []string
			pages := 0
			for {
				p := l.list(q)
				pages++
				require.LessOrEqual(t, len(p.Memories), limit)
				got = append(got, ids(p.Memories...)...)
				if p.NextCursor == nil {
					break
				}
				require.Len(t, p.Memories, limit, "only the last page is short")
				require.LessOrEqual(t, pages, 23)
				q.Set("cursor", *p.NextCursor)
			}
			require.Equal(t, newestFirst, got, "every memory exactly once, newest first")
			require.Equal(t, (23+limit-1)/limit, pages)
		})
	}

	// With a filter too.
	var candidates []string
	for i, m := range created {
		if i%3 == 0 && i != 0 {
			candidates = append(candidates, m.ID)
		}
	}
	slices.Reverse(candidates)
	require.Equal(t, candidates, l.listAll(url.Values{"status": {"candidate"}, "limit": {"2"}}))
	var active []string
	for i, m := range created {
		if i%3 != 0 || i == 0 {
			active = append(active, m.ID)
		}
	}
	slices.Reverse(active)
	require.Equal(t, active, l.listAll(url.Values{"status": {"active"}, "limit": {"3"}}))

	// A page's cursor keeps working after new memories are created: they are newer, so they
	// are not in the rest of the walk.
	p := l.list(url.Values{"limit": {"10"}})
	require.NotNil(t, p.NextCursor)
	l.mem(map[string]any{"memory_type": "episodic", "content": "newer"})
	rest := l.listAll(url.Values{"limit": {"10"}, "cursor": {*p.NextCursor}})
	require.Equal(t, newestFirst[10:], rest)
}

// reinforce reinforces memory id n times by delta.
func (l *ledger) reinforce(id string, n int, delta float64) domain.Memory {
	l.t.Helper()
	var m domain.Memory
	for range n {
		m = l.act("POST", "/memory/"+id+"/reinforce", map[string]any{"delta": delta})
	}
	return m
}

func TestAutoPromote(t *testing.T) {
	l := startLedger(t)
	cand := func(content string, conf float64) domain.Memory {
		return l.mem(map[string]any{"memory_type": "knowledge", "content": content, "status": "candidate", "confidence": conf})
	}
	atThresholds := cand("exactly 3 refs and 0.7", 0.4)
	l.reinforce(atThresholds.ID, 3, 0.1)
	require.Equal(t, 0.7, l.get(atThresholds.ID).Confidence)
	fewRefs := cand("2 refs, 0.9", 0.7)
	l.reinforce(fewRefs.ID, 2, 0.1)
	lowConf := cand("3 refs, 0.6", 0.3)
	l.reinforce(lowConf.ID, 3, 0.1)
	never := cand("never reinforced", 1)
	activeOne := l.mem(map[string]any{"memory_type": "knowledge", "content": "active, 3 refs"})
	l.reinforce(activeOne.ID, 3, 0.05)
	many := cand("5 refs, 1.0", 0.9)
	l.reinforce(many.ID, 5, 0.05)
	rejected := cand("rejected, 4 refs", 0.9)
	l.reinforce(rejected.ID, 4, 0.05)
	l.act("POST", "/memory/"+rejected.ID+"/reject", nil)

	seq := l.lastSeq()
	res := l.expect(http.StatusOK, "POST", "/admin/memory/auto-promote", nil)
	require.JSONEq(t, fmt.Sprintf(`{"promoted": [%q, %q]}`, atThresholds.ID, many.ID), string(res.Body), "in creation order")
	require.Equal(t, seq+2, l.lastSeq())
	for _, id := range []string{atThresholds.ID, many.ID} {
		m := l.get(id)
		require.Equal(t, domain.StatusActive, m.Status)
		entries := l.auditOf(id)
		last := entries[len(entries)-1]
		require.Equal(t, domain.ActionPromoted, last.Action)
		require.Equal(t, principal, last.Actor, "a sweep asked for over HTTP is the token's")
		require.Contains(t, last.Note, "auto-promote")
		require.Equal(t, m.Seq, last.Seq)
	}
	for _, id := range []string{fewRefs.ID, lowConf.ID, never.ID} {
		require.Equal(t, domain.StatusCandidate, l.get(id).Status)
	}
	require.Equal(t, domain.StatusInvalid, l.get(rejected.ID).Status)
	require.Len(t, l.recent(url.Values{"actor": {principal}, "action": {"promoted"}}), 2)

	// Again: nothing left to promote.
	res = l.expect(http.StatusOK, "POST", "/admin/memory/auto-promote", nil)
	require.JSONEq(t, `{"promoted": []}`, string(res.Body))
	require.Equal(t, seq+2, l.lastSeq())

	// Thresholds in the body.
	res = l.expect(http.StatusOK, "POST", "/admin/memory/auto-promote", map[string]any{"min_reference_count": 2, "min_confidence": 0.8})
	require.JSONEq(t, fmt.Sprintf(`{"promoted": [%q]}`, fewRefs.ID), string(res.Body))
	res = l.expect(http.StatusOK, "POST", "/admin/memory/auto-promote",
		map[string]any{"min_reference_count": 1, "min_confidence": 0.5, "note": "lowered for the test"}, "X-Actor", "ops-oncall")
	require.JSONEq(t, fmt.Sprintf(`{"promoted": [%q]}`, lowConf.ID), string(res.Body))
	last := l.auditOf(lowConf.ID)[4]
	require.Equal(t, domain.ActionPromoted, last.Action)
	require.Equal(t, "ops-oncall", last.Actor, "X-Actor overrides the job's actor")
	require.Equal(t, "lowered for the test", last.Note)
	require.Equal(t, domain.StatusCandidate, l.get(never.ID).Status, "never reinforced: below any reference threshold")
	require.Equal(t, seq+4, l.lastSeq())
}

func TestExpireCandidates(t *testing.T) {
	now := time.Date(2026, 4, 16, 12, 0, 0, 0, time.UTC)
	clk := newClock(now.Add(-15 * 24 * time.Hour))
	l := startLedger(t, withClock(clk.Now))
	cand := func(content string) domain.Memory {
		return l.mem(map[string]any{"memory_type": "episodic", "content": content, "status": "candidate"})
	}

	// 15 days ago.
	stale1 := cand("stale 1")
	reinforced := cand("old but reinforced")
	l.reinforce(reinforced.ID, 1, 0.05)
	oldActive := l.mem(map[string]any{"memory_type": "episodic", "content": "old active"})
	promoted := cand("old, promoted")
	l.act("POST", "/memory/"+promoted.ID+"/promote", nil)
	stale2 := cand("stale 2")
	// 13 days ago.
	clk.Set(now.Add(-13 * 24 * time.Hour))
	recent := cand("13 days old")
	// 14 days and an hour ago, created after the others: the order of creation counts, not of time.
	clk.Set(now.Add(-14*24*time.Hour - time.Hour))
	stale3 := cand("stale 3")
	// Now.
	clk.Set(now)
	fresh := cand("fresh")

	seq := l.lastSeq()
	res := l.expect(http.StatusOK, "POST", "/admin/memory/expire-candidates", nil)
	require.JSONEq(t, fmt.Sprintf(`{"expired": [%q, %q, %q]}`, stale1.ID, stale2.ID, stale3.ID), string(res.Body))
	require.Equal(t, seq+3, l.lastSeq())
	for _, m := range []domain.Memory{stale1, stale2, stale3} {
		got := l.get(m.ID)
		require.Equal(t, domain.StatusInvalid, got.Status)
		require.True(t, got.UpdatedAt.Equal(now))
		entries := l.auditOf(m.ID)
		require.Len(t, entries, 2)
		e := entries[1]
		require.Equal(t, domain.ActionExpired, e.Action)
		require.Equal(t, principal, e.Actor, "a sweep asked for over HTTP is the token's")
		require.NotEmpty(t, e.Note)
		require.True(t, e.Timestamp.Equal(now))
		require.Equal(t, domain.StatusCandidate, snapshot(t, e.Before).Status)
	}
	for _, m := range []domain.Memory{reinforced, recent, fresh} {
		require.Equal(t, domain.StatusCandidate, l.get(m.ID).Status)
	}
	require.Equal(t, domain.StatusActive, l.get(oldActive.ID).Status)
	require.Equal(t, domain.StatusActive, l.get(promoted.ID).Status)
	require.Len(t, l.recent(url.Values{"action": {"expired"}}), 3)

	// Again: nothing.
	res = l.expect(http.StatusOK, "POST", "/admin/memory/expire-candidates", nil)
	require.JSONEq(t, `{"expired": []}`, string(res.Body))
	require.Equal(t, seq+3, l.lastSeq())

	// With a shorter age in the body, the 13-day-old candidate goes too.
	res = l.expect(http.StatusOK, "POST", "/admin/memory/expire-candidates", map[string]any{"max_age_days": 10})
	require.JSONEq(t, fmt.Sprintf(`{"expired": [%q]}`, recent.ID), string(res.Body))

	// Two weeks later the fresh one is stale.
	clk.Set(now.Add(15 * 24 * time.Hour))
	res = l.expect(http.StatusOK, "POST", "/admin/memory/expire-candidates", nil)
	require.JSONEq(t, fmt.Sprintf(`{"expired": [%q]}`, fresh.ID), string(res.Body))
	require.Equal(t, domain.StatusCandidate, l.get(reinforced.ID).Status, "a reinforced candidate never expires")
}
