package projections

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// auditAfter finds the snapshot after the change as a full decode does, whatever the
// snapshots' content holds.
func TestAuditAfterIsDecode(t *testing.T) {
	for name, e := range map[string]AuditEntry{
		"create": {Seq: 7, MemoryID: "m-1", Action: "create", Timestamp: time.Date(2026, 11, 28, 1, 2, 3, 0, time.UTC),
			Before: nullJSON, After: json.RawMessage(`{"id":"m-1","content":"a"}`)},
		"content that looks like the field": {Seq: 8, MemoryID: "m-1", Action: "update", Note: `,"after":{}`,
			Timestamp: time.Date(2026, 11, 28, 1, 2, 3, 0, time.UTC),
			Before:    json.RawMessage(`{"id":"m-1","content":"x,\"after\":1}"}`),
			After:     json.RawMessage(`{"id":"m-1","content":"y,\"after\":{\"a\":2}}"}`)},
		"invalidated to nothing": {Seq: 9, MemoryID: "m-2", Action: "create", Timestamp: time.Date(2026, 11, 28, 1, 2, 3, 0, time.UTC),
			Before: nullJSON, After: nullJSON},
	} {
		t.Run(name, func(t *testing.T) {
			data, err := appendAuditEntry(nil, e)
			require.NoError(t, err)
			got, err := auditAfter(data)
			require.NoError(t, err)
			require.Equal(t, string(e.After), string(got))
		})
	}
	// Another layout is decoded.
	got, err := auditAfter([]byte(`{"after":{"id":"m"},"seq":1}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"m"}`, string(got))
	_, err = auditAfter([]byte(`{"after":`))
	require.Error(t, err)
}

// mayMatch never rules out a memory that matches, and rules out one that does not.
func TestMayMatch(t *testing.T) {
	m := []byte(`{"id":"m","memory_type":"preference","content":"said \"status\":\"candidate\"","project":"p-1","status":"active"}`)
	for _, f := range []MemoryFilter{{}, {Status: "active"}, {MemoryType: "preference"}, {Project: "p-1"},
		{Status: "active", MemoryType: "preference", Project: "p-1"}} {
		require.True(t, mayMatch(m, f), "%+v", f)
		require.True(t, matches(m, f), "%+v", f)
	}
	for _, f := range []MemoryFilter{{Status: "candidate"}, {MemoryType: "knowledge"}, {Project: "p-2"}, {Project: "p"}} {
		require.False(t, mayMatch(m, f), "%+v", f)
		require.False(t, matches(m, f), "%+v", f)
	}
}
