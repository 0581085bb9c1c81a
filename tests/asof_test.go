package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

func TestAsOfMemory(t *testing.T) {
	now := time.Date(2026, 4, 16, 12, 0, 0, 0, time.UTC)
	clk := newClock(now)
	l := startLedger(t, withClock(clk.Now)) // 1: the first start's admin token
	clk.Advance(time.Minute)
	other := l.mem(map[string]any{"memory_type": "knowledge", "content": "other"}) // 2
	clk.Advance(time.Minute)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "v1", "status": "candidate"}) // 3
	clk.Advance(time.Minute)
	v2 := l.act("PUT", "/memory/"+m.ID, map[string]any{"content": "v2"}) // 4
	clk.Advance(time.Minute)
	l.act("POST", "/memory/"+m.ID+"/promote", nil) // 5
	clk.Advance(time.Minute)
	l.act("POST", "/memory/"+m.ID+"/invalidate", map[string]any{"reason": "wrong"}) // 6
	clk.Advance(time.Minute)
	audit := l.auditOf(m.ID)
	require.Len(t, audit, 4)

	for i, e := range audit {
		for _, at := range []string{fmt.Sprint(e.Seq), e.Timestamp.Add(30 * time.Second).Format(time.RFC3339)} {
			res := l.expect(http.StatusOK, "GET", "/memory/"+m.ID+"?as_of="+at, nil)
			require.JSONEq(t, string(e.After), string(res.Body), "as of %s", at)
			var a struct {
				Entries []json.RawMessage `json:"entries"`
			}
			l.expect(http.StatusOK, "GET", "/memory/"+m.ID+"/audit?as_of="+at, nil).Decode(t, &a)
			require.Len(t, a.Entries, i+1, "as of %s", at)
		}
	}
	require.Equal(t, "v2", v2.Content)
	// Before it existed: 404; the other memory existed.
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of=2", nil), http.StatusNotFound, "")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"/audit?as_of=2", nil), http.StatusNotFound, "")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of="+now.Add(30*time.Second).Format(time.RFC3339), nil), http.StatusNotFound, "")
	l.expect(http.StatusOK, "GET", "/memory/"+other.ID+"?as_of=2", nil)
	// Refused: beyond the end, malformed, in the future, an unknown parameter.
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of=7", nil), http.StatusBadRequest, "as_of", "beyond the log's end")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of=0", nil), http.StatusBadRequest, "as_of")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of=yesterday", nil), http.StatusBadRequest, "as_of")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of="+now.Add(time.Hour).Format(time.RFC3339), nil), http.StatusBadRequest, "as_of", "future")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?at=3", nil), http.StatusBadRequest, "at", "unknown query parameter")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"/audit?limit=3", nil), http.StatusBadRequest, "limit", "unknown query parameter")
}

// TestAsOfListsAndState checks GET /memory (with its filters and paging) and GET
// /project/state as of every position of a known history, and as of a time within each
// event's minute: each answers exactly what the current-state read answered when the log
// ended there.
func TestAsOfListsAndState(t *testing.T) {
	now := time.Date(2026, 4, 16, 12, 0, 0, 0, time.UTC)
	clk := newClock(now)
	l := startLedger(t, withClock(clk.Now))
	queries := []string{
		"/memory?limit=500",
		"/memory?status=active&limit=500",
		"/memory?status=candidate&limit=500",
		"/memory?status=invalid&limit=500",
		"/memory?memory_type=preference&limit=500",
		"/memory?project=alpha&limit=500",
		"/memory?project=alpha&status=active&limit=500",
		"/project/state",
		"/project/state?project=alpha",
		"/project/state?project=alpha&include_invalid=true",
		"/project/state?project=alpha&category=decision&include_invalid=true",
		"/project/state?project=atocore&category=alert",
	}
	type moment struct {
		seq     uint64
		at      time.Time
		answers map[string]string
		pages   []string // the ids of every page of GET /memory?limit=2
	}
	var moments []moment
	record := func() {
		t.Helper()
		m := moment{seq: l.lastSeq(), at: clk.Now(), answers: map[string]string{}}
		for _, q := range queries {
			m.answers[q] = string(l.expect(http.StatusOK, "GET", q, nil).Body)
		}
		m.pages = l.listAll(url.Values{"limit": {"2"}})
		moments = append(moments, m)
		clk.Advance(time.Minute)
	}
	var a, b, c domain.Memory
	steps := []func(){
		func() { pfProject(t, l, "alpha") },
		func() {
			a = l.mem(map[string]any{"memory_type": "knowledge", "content": "a1", "project": "alpha", "status": "candidate"})
		},
		func() { b = l.mem(map[string]any{"memory_type": "preference", "content": "likes tea"}) },
		func() {
			pfSetState(t, l, map[string]any{"project": "alpha", "category": "decision", "key": "log", "value": "NATS"})
		},
		func() { l.act("PUT", "/memory/"+a.ID, map[string]any{"content": "a2", "memory_type": "preference"}) },
		func() { l.act("POST", "/memory/"+a.ID+"/promote", nil) },
		func() {
			pfSetState(t, l, map[string]any{"project": "alpha", "category": "decision", "key": "log", "value": "NATS JetStream"})
		},
		func() { c = l.mem(map[string]any{"memory_type": "knowledge", "content": "c1", "project": "alpha"}) },
		func() { alertRaise(t, l, map[string]any{"severity": "warning", "title": "one"}) },
		func() { l.act("POST", "/memory/"+b.ID+"/invalidate", map[string]any{"reason": "wrong"}) },
		func() {
			pfExpect(t, l, http.StatusOK, "DELETE", "/project/state", map[string]any{"project": "alpha", "category": "decision", "key": "log"})
		},
		func() { alertRaise(t, l, map[string]any{"severity": "warning", "title": "two"}) },
		func() { l.act("POST", "/memory/"+c.ID+"/reinforce", map[string]any{"delta": 0.1}) },
		func() {
			pfSetState(t, l, map[string]any{"project": "alpha", "category": "status", "key": "phase", "value": "beta"})
		},
	}
	for _, step := range steps {
		step()
		record()
	}
	require.Equal(t, uint64(1+len(steps)), moments[len(moments)-1].seq, "one event a step, after the first start's admin token")

	for _, m := range moments {
		// A position, and a time half a minute after the position's event.
		for _, at := range []string{fmt.Sprint(m.seq), m.at.Add(30 * time.Second).Format(time.RFC3339)} {
			for _, q := range queries {
				sep := "&"
				if !strings.Contains(q, "?") {
					sep = "?"
				}
				got := l.expect(http.StatusOK, "GET", q+sep+"as_of="+url.QueryEscape(at), nil)
				require.JSONEq(t, m.answers[q], string(got.Body), "%s as of %s (position %d)", q, at, m.seq)
			}
			require.Equal(t, m.pages, l.listAll(url.Values{"limit": {"2"}, "as_of": {at}}), "the pages as of %s", at)
		}
	}

	// Named moments: before a memory existed it is in no list; an invalidated one is listed as
	// it was; the state entry is listed with its value of the time, then as invalidated.
	idsAsOf := func(q string, at uint64) []string {
		return pfMemoryIDs(t, l, url.Values{"status": {q}, "as_of": {fmt.Sprint(at)}})
	}
	require.NotContains(t, pfMemoryIDs(t, l, url.Values{"as_of": {"3"}}), b.ID, "b did not exist yet")
	require.Equal(t, []string{a.ID}, idsAsOf("candidate", 5))
	require.Equal(t, []string{b.ID}, idsAsOf("active", 5))
	require.Equal(t, []string{c.ID, b.ID, a.ID}, idsAsOf("active", 10), "newest first by creation")
	require.Equal(t, []string{b.ID}, idsAsOf("invalid", 11))
	var page struct {
		Memories []domain.Memory `json:"memories"`
	}
	l.expect(http.StatusOK, "GET", "/memory?status=invalid&as_of=11", nil).Decode(t, &page)
	require.Equal(t, "likes tea", page.Memories[0].Content)
	require.Equal(t, uint64(11), page.Memories[0].Seq)
	st := pfState(t, l, url.Values{"project": {"alpha"}, "as_of": {"7"}})
	require.Len(t, st, 1)
	require.Equal(t, "NATS", st[0].Value)
	st = pfState(t, l, url.Values{"project": {"alpha"}, "as_of": {"11"}})
	require.Equal(t, "NATS JetStream", st[0].Value)
	require.Empty(t, pfState(t, l, url.Values{"project": {"alpha"}, "as_of": {"12"}}), "invalidated")
	st = pfState(t, l, url.Values{"project": {"alpha"}, "as_of": {"12"}, "include_invalid": {"true"}})
	require.Equal(t, domain.StateInvalid, st[0].Status)
	require.Empty(t, pfState(t, l, url.Values{"project": {"alpha"}, "as_of": {"3"}}), "no entry yet")
	require.Empty(t, pfState(t, l, url.Values{"as_of": {now.Add(-time.Hour).Format(time.RFC3339)}}), "before the log began")

	// Refused: beyond the end, malformed, in the future; the same on both.
	for _, p := range []string{"/memory", "/project/state"} {
		requireProblem(t, l.do("GET", p+"?as_of=16", nil), http.StatusBadRequest, "as_of", "beyond the log's end")
		requireProblem(t, l.do("GET", p+"?as_of=0", nil), http.StatusBadRequest, "as_of")
		requireProblem(t, l.do("GET", p+"?as_of=soon", nil), http.StatusBadRequest, "as_of")
		requireProblem(t, l.do("GET", p+"?as_of="+clk.Now().Add(time.Hour).Format(time.RFC3339), nil), http.StatusBadRequest, "as_of", "future")
	}
}
