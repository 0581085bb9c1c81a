package projections

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A stored audit entry reads back, from its snapshot after the change, as the JSON of the
// entry with both snapshots, byte for byte, whatever the snapshots and the head hold, at any
// index among its memory's entries (with the snapshot after stored in full or not).
func TestAuditRecordReadsBackAsTheEntry(t *testing.T) {
	at := time.Date(2026, 11, 28, 1, 2, 3, 400, time.UTC)
	for name, e := range map[string]AuditEntry{
		"create": {Seq: 7, EventID: "0193a0b4-7c1e-7000-8000-000000000001", MemoryID: "m-1", Action: "create",
			Actor: "api-http", Timestamp: at, Before: nullJSON,
			After: json.RawMessage(`{"id":"m-1","content":"a \u003cb\u003e","domain_tags":["x","y"],"seq":7}`)},
		"content that looks like members": {Seq: 8, MemoryID: "m-1", Action: "update", Note: `,"after":{}`, Timestamp: at,
			Before: json.RawMessage(`{"id":"m-1","content":"x,\"after\":1}, {[\\","tags":[{"a":[1,2]},"b,c"],"seq":7}`),
			After:  json.RawMessage(`{"id":"m-1","content":"y,\"after\":{\"a\":2}}","tags":[{"a":[1,2]},"b,c"],"seq":8}`)},
		"members moved and dropped": {Seq: 9, MemoryID: "m-1", Action: "update", Timestamp: at,
			Before: json.RawMessage(`{"b":2,"a":1,"c":{"d":null}}`), After: json.RawMessage(`{"a":1,"b":2,"e":[]}`)},
		"empty objects": {Seq: 10, MemoryID: "m-1", Action: "update", Timestamp: at,
			Before: json.RawMessage(`{}`), After: json.RawMessage(`{"a":1}`)},
		"not objects": {Seq: 11, MemoryID: "m-1", Action: "update", Timestamp: at,
			Before: json.RawMessage(`[1,2]`), After: json.RawMessage(`"s"`)},
		"revert with a correlation id": {Seq: 12, EventID: "e-9", MemoryID: "m\\\"odd", Action: "reverted", Actor: "admin",
			Note: "undo", Timestamp: at, Before: json.RawMessage(`{"id":"m-1","seq":3}`),
			After: json.RawMessage(`{"id":"m-1","seq":12}`), CorrelationID: "req \"1\"", Undoes: []string{"e-2", "e-3"}},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := appendAuditEntry(nil, e)
			require.NoError(t, err)
			for _, n := range []uint64{0, 1, auditKeyframe, 3 * auditKeyframe, auditKeyframe + 1} {
				data, err := appendAuditRecord(nil, e, n)
				require.NoError(t, err)
				r, err := decodeAuditRecord(data)
				require.NoError(t, err)
				require.Equal(t, n, r.n)
				require.Equal(t, n > 0 && n%auditKeyframe == 0, r.after != nil, "the snapshot after is stored in full")
				if r.after != nil {
					require.Equal(t, string(e.After), string(r.after))
				}
				before, err := applyDiff(r.before, e.After)
				require.NoError(t, err)
				require.Equal(t, string(e.Before), string(before))
				require.Equal(t, string(want), string(r.entry(before, e.After)))
				id, err := r.memoryID()
				require.NoError(t, err)
				require.Equal(t, e.MemoryID, id)
				var head map[string]any
				require.NoError(t, json.Unmarshal(r.head, &head), "the head is JSON of its own")
				require.Equal(t, e.Actor, head["actor"])
			}
		})
	}
	_, err := decodeAuditRecord([]byte{0, 200})
	require.Error(t, err)
	_, err = applyDiff([]byte{1, 4}, []byte(`{"a":1}`))
	require.Error(t, err, "a member the source does not have")
}

// A diff of two memories that differ in a few members is a fraction of the snapshot.
func TestDiffStoresOnlyTheChangedMembers(t *testing.T) {
	before := []byte(`{"id":"0193a0b4-7c1e-7000-8000-000000000001","memory_type":"knowledge","content":"` +
		"The ledger keeps every change as an immutable event; the projections are derived from it." +
		`","project":"p","status":"candidate","confidence":0.5,"reference_count":0,"seq":7}`)
	after := []byte(`{"id":"0193a0b4-7c1e-7000-8000-000000000001","memory_type":"knowledge","content":"` +
		"The ledger keeps every change as an immutable event; the projections are derived from it." +
		`","project":"p","status":"active","confidence":0.5,"reference_count":0,"seq":9}`)
	d := appendDiff(nil, before, after)
	require.Less(t, len(d), 40)
	got, err := applyDiff(d, after)
	require.NoError(t, err)
	require.Equal(t, string(before), string(got))
}
