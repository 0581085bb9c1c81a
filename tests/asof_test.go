package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAsOfMemory(t *testing.T) {
	now := time.Date(2026, 4, 16, 12, 0, 0, 0, time.UTC)
	clk := newClock(now)
	l := startLedger(t, withClock(clk.Now))
	other := l.mem(map[string]any{"memory_type": "knowledge", "content": "other"}) // 1
	clk.Advance(time.Minute)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "v1", "status": "candidate"}) // 2
	clk.Advance(time.Minute)
	v2 := l.act("PUT", "/memory/"+m.ID, map[string]any{"content": "v2"}) // 3
	clk.Advance(time.Minute)
	l.act("POST", "/memory/"+m.ID+"/promote", nil) // 4
	clk.Advance(time.Minute)
	l.act("POST", "/memory/"+m.ID+"/invalidate", map[string]any{"reason": "wrong"}) // 5
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
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of=1", nil), http.StatusNotFound, "")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"/audit?as_of=1", nil), http.StatusNotFound, "")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of="+now.Add(30*time.Second).Format(time.RFC3339), nil), http.StatusNotFound, "")
	l.expect(http.StatusOK, "GET", "/memory/"+other.ID+"?as_of=1", nil)
	// Refused: beyond the end, malformed, in the future, an unknown parameter.
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of=6", nil), http.StatusBadRequest, "as_of", "beyond the log's end")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of=0", nil), http.StatusBadRequest, "as_of")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of=yesterday", nil), http.StatusBadRequest, "as_of")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?as_of="+now.Add(time.Hour).Format(time.RFC3339), nil), http.StatusBadRequest, "as_of", "future")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"?at=3", nil), http.StatusBadRequest, "at", "unknown query parameter")
	requireProblem(t, l.do("GET", "/memory/"+m.ID+"/audit?limit=3", nil), http.StatusBadRequest, "limit", "unknown query parameter")
}
