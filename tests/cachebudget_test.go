package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// The decoded-state cache holds at most its byte budget, however large the memories written:
// 40 memories of 50,000 characters (some 4 MB decoded) against a 1 MiB budget.
func TestStateCacheStaysWithinItsByteBudget(t *testing.T) {
	const budget = 1 << 20
	l := startLedger(t, withConfig(func(c *app.Config) { c.CacheBytes, c.MaxContent = budget, 100_000 }))
	mems, ok := l.Main.Runner.Projections[0].(projections.Memories)
	require.True(t, ok, "the first projection is the memories'")
	var ids []string
	for i := range 40 {
		content := fmt.Sprintf("memory %d: ", i) + strings.Repeat("large content ", 50_000/14)
		ids = append(ids, l.mem(map[string]any{"memory_type": "knowledge", "content": content}).ID)
		require.LessOrEqual(t, mems.CacheBytes(), int64(budget), "after %d memories", i+1)
	}
	require.Greater(t, mems.CacheBytes(), int64(budget/2), "the cache is used up to its budget")
	// Memories that left the cache are read from the views, changed and read back as ever.
	for _, id := range ids[:5] {
		m := l.act("POST", "/memory/"+id+"/reinforce", nil)
		require.Equal(t, 1, m.ReferenceCount)
		require.True(t, strings.HasPrefix(l.get(id).Content, "memory "))
	}
	require.LessOrEqual(t, mems.CacheBytes(), int64(budget))

	// A budget of 0 keeps no cache, and the projection works the same.
	l2 := startLedger(t, withConfig(func(c *app.Config) { c.CacheBytes = 0 }))
	m := l2.mem(map[string]any{"memory_type": "knowledge", "content": "uncached"})
	l2.expect(http.StatusOK, "POST", "/memory/"+m.ID+"/reinforce", nil)
	require.Zero(t, l2.Main.Runner.Projections[0].(projections.Memories).CacheBytes())
}
