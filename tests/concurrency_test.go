package tests

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

const racers = 20

// requireOneWinner checks that exactly one answer is 200 and every other a conflict (409 or
// 412) told as a problem, and returns the winner's index.
func requireOneWinner(t *testing.T, rs []response) int {
	t.Helper()
	winner := -1
	for i, r := range rs {
		switch r.Status {
		case http.StatusOK:
			require.Equal(t, -1, winner, "two winners:\n%s", describe(rs))
			winner = i
		case http.StatusConflict, http.StatusPreconditionFailed:
			requireProblem(t, r, r.Status, "")
		default:
			t.Fatalf("goroutine %d: unexpected answer:\n%s", i, describe(rs))
		}
	}
	require.NotEqual(t, -1, winner, "no winner:\n%s", describe(rs))
	return winner
}

func TestConcurrentPromoteWithIfMatch(t *testing.T) {
	l := startLedger(t)
	res := l.expect(http.StatusCreated, "POST", "/memory",
		map[string]any{"memory_type": "preference", "content": "likes tea", "status": "candidate"})
	tag := res.Header.Get("ETag")
	require.NotEmpty(t, tag)
	id := res.JSON(t)["id"].(string)
	seq := l.lastSeq()

	rs := race(t, racers, func(i int) (response, error) {
		return l.send("POST", "/memory/"+id+"/promote",
			map[string]any{"note": fmt.Sprintf("racer %d", i)}, "If-Match", tag, "X-Actor", fmt.Sprintf("racer-%d", i))
	})
	w := requireOneWinner(t, rs)

	var m domain.Memory
	rs[w].Decode(t, &m)
	require.Equal(t, domain.StatusActive, m.Status)
	require.Equal(t, seq+1, l.lastSeq(), "exactly one event written")
	require.Equal(t, m, l.get(m.ID))
	entries := l.auditOf(m.ID)
	require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionPromoted}, actions(entries))
	require.Equal(t, fmt.Sprintf("racer-%d", w), entries[1].Actor, "the winner's promote is the one recorded")
	require.Equal(t, fmt.Sprintf("racer %d", w), entries[1].Note)
}

func TestConcurrentUpdateWithIfMatch(t *testing.T) {
	l := startLedger(t)
	c := l.mem(map[string]any{"memory_type": "preference", "content": "version 0"})
	tag := fmt.Sprintf(`"%d"`, c.Seq)
	seq := l.lastSeq()

	rs := race(t, racers, func(i int) (response, error) {
		return l.send("PUT", "/memory/"+c.ID, map[string]any{"content": fmt.Sprintf("version %d", i+1)}, "If-Match", tag)
	})
	w := requireOneWinner(t, rs)

	var m domain.Memory
	rs[w].Decode(t, &m)
	require.Equal(t, fmt.Sprintf("version %d", w+1), m.Content)
	require.Equal(t, fmt.Sprintf(`"%d"`, m.Seq), rs[w].Header.Get("ETag"))
	require.Equal(t, seq+1, l.lastSeq(), "exactly one event written")
	require.Equal(t, m, l.get(c.ID))
	entries := l.auditOf(c.ID)
	require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionUpdated}, actions(entries))
	require.Equal(t, "version 0", snapshot(t, entries[1].Before).Content)
	require.Equal(t, m.Content, snapshot(t, entries[1].After).Content)

	// The losers' If-Match is now stale: a retry with it is refused, with the new one accepted.
	res := l.do("PUT", "/memory/"+c.ID, map[string]any{"content": "late"}, "If-Match", tag)
	requireProblem(t, res, http.StatusPreconditionFailed, "")
	l.act("PUT", "/memory/"+c.ID, map[string]any{"content": "late"}, "If-Match", rs[w].Header.Get("ETag"))
}

// Without If-Match the server re-reads and re-decides a command that met a concurrent
// change; a command that still loses after its retries is a conflict. Every success is one
// audit entry.
func TestConcurrentUpdatesWithoutIfMatch(t *testing.T) {
	l := startLedger(t)
	c := l.mem(map[string]any{"memory_type": "knowledge", "content": "version 0", "confidence": 0.5})
	seq := l.lastSeq()

	// Each racer changes one field to a value no other racer uses, so that no success is a
	// no-op.
	body := func(i int) map[string]any {
		switch i % 4 {
		case 0:
			return map[string]any{"content": fmt.Sprintf("version %d", i+1)}
		case 1:
			return map[string]any{"confidence": 0.01 * float64(i+1)}
		case 2:
			return map[string]any{"domain_tags": []string{fmt.Sprintf("tag-%d", i)}}
		default:
			return map[string]any{"valid_until": time.Date(2027, 1, 1+i, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)}
		}
	}
	rs := race(t, racers, func(i int) (response, error) {
		return l.send("PUT", "/memory/"+c.ID, body(i), "X-Actor", fmt.Sprintf("racer-%d", i))
	})

	won := map[string]bool{}
	seqs := map[uint64]bool{}
	for i, r := range rs {
		switch r.Status {
		case http.StatusOK:
			var m domain.Memory
			r.Decode(t, &m)
			require.False(t, seqs[m.Seq], "two successes at the same version:\n%s", describe(rs))
			seqs[m.Seq] = true
			won[fmt.Sprintf("racer-%d", i)] = true
		case http.StatusConflict:
			requireProblem(t, r, http.StatusConflict, "", "concurrently")
		default:
			t.Fatalf("goroutine %d: unexpected answer:\n%s", i, describe(rs))
		}
	}
	require.NotEmpty(t, won, "at least one racer gets through:\n%s", describe(rs))
	t.Logf("%d of %d unconditional updates succeeded", len(won), racers)

	require.Equal(t, seq+uint64(len(won)), l.lastSeq(), "one event per success")
	entries := l.auditOf(c.ID)
	require.Len(t, entries, 1+len(won), "one audit entry per success")
	for i, e := range entries[1:] {
		require.Equal(t, domain.ActionUpdated, e.Action)
		require.True(t, won[e.Actor], "entry of %s, which did not get a 200", e.Actor)
		require.True(t, seqs[e.Seq])
		require.JSONEq(t, string(entries[i].After), string(e.Before), "each update starts from the previous one")
		delete(won, e.Actor)
	}
	require.Empty(t, won, "every success has its entry")
	require.Equal(t, l.get(c.ID), *snapshot(t, entries[len(entries)-1].After))
}
