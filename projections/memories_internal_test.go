package projections

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

// The audit entry written by hand is what encoding/json writes for an AuditEntry, so that
// files written before and after it hold the same bytes.
func TestAppendAuditEntryIsMarshal(t *testing.T) {
	for name, e := range map[string]AuditEntry{
		"create": {Seq: 7, EventID: "0193a0b4-7c1e-7000-8000-000000000001", MemoryID: "m-1", Action: "create",
			Actor: "api-http", Note: "", Timestamp: time.Date(2026, 11, 28, 1, 2, 3, 400, time.UTC),
			Before: nullJSON, After: json.RawMessage(`{"id":"m-1","content":"a \u003cb\u003e"}`)},
		"escapes": {Seq: 1 << 60, EventID: "key \"quoted\" \xff", MemoryID: "m\u2028", Action: "update",
			Actor: "ops<bot>", Note: "line\nbreak\ttab & more", Timestamp: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
			Before: json.RawMessage(`{"id":"m"}`), After: json.RawMessage(`{"id":"m","status":"active"}`)},
		"revert": {Seq: 9, EventID: "e-9", MemoryID: "m-1", Action: "reverted", Actor: "admin", Note: "undo",
			Timestamp: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Before: json.RawMessage(`{"id":"m-1"}`),
			After: json.RawMessage(`{"id":"m-1"}`), CorrelationID: "req \"1\"", Undoes: []string{"e-2", "e-3"}},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(e)
			require.NoError(t, err)
			got, err := appendAuditEntry(nil, e)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
	_, err := appendAuditEntry(nil, AuditEntry{Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.Error(t, err, "a time JSON cannot hold is refused, as encoding/json refuses it")
}

// The decoded-state cache accounts every entry it keeps, stays within its budget through any
// churn, and keeps no entry larger than the whole budget.
func TestStateCacheByteBudget(t *testing.T) {
	const budget = 20_000
	c := newStateCache(budget)
	for i := range 2000 {
		id := fmt.Sprintf("m%d", i%300)
		st := &memoryState{json: make([]byte, 100+i%900), m: domain.Memory{ID: id, Content: strings.Repeat("x", i%3000)}}
		c.put(id, st)
		require.LessOrEqual(t, c.Bytes(), int64(budget))
		var sum int64
		for k, e := range c.entries {
			require.Equal(t, stateSize(k, &e.st), e.size)
			sum += e.size
		}
		require.Equal(t, sum, c.Bytes())
		if got, ok := c.get(id, st.json); ok {
			require.Equal(t, st.m.Content, got.m.Content)
		}
	}
	c.put("huge", &memoryState{m: domain.Memory{Content: strings.Repeat("x", budget)}})
	_, kept := c.entries["huge"]
	require.False(t, kept, "an entry over the whole budget is not kept")
}
