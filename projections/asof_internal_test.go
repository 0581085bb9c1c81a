package projections

import (
	"testing"

	"github.com/stretchr/testify/require"
)

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
