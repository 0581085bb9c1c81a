package tests

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// callAsync calls a tool in the background and returns the channel its result comes on.
func (c *mcpClient) callAsync(name string, args map[string]any) <-chan *mcp.CallToolResult {
	out := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			res = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "protocol failure: " + err.Error()}}}
		}
		out <- res
	}()
	return out
}

// toolResult waits for a tool's result and returns its structured content.
func toolResult(t *testing.T, ch <-chan *mcp.CallToolResult) map[string]any {
	t.Helper()
	select {
	case res := <-ch:
		require.False(t, res.IsError, toolText(res))
		out, ok := res.StructuredContent.(map[string]any)
		require.True(t, ok, "structured content: %T", res.StructuredContent)
		return out
	case <-time.After(60 * time.Second):
		t.Fatal("no result")
	}
	return nil
}

func requireToolWaiting(t *testing.T, ch <-chan *mcp.CallToolResult, what string) {
	t.Helper()
	select {
	case res := <-ch:
		t.Fatalf("%s answered while the projections were held back: %s", what, toolText(res))
	case <-time.After(300 * time.Millisecond):
	}
}

func positionOf(t *testing.T, out map[string]any) uint64 {
	t.Helper()
	p, ok := out["position"].(float64)
	require.True(t, ok, "no position in %v", out)
	return uint64(p)
}

// Read-your-writes over MCP: every read tool takes min_seq and waits, as the HTTP reads do,
// until the projections (and the search index, for a search) have applied it, and answers
// the position it was served at; a position the log does not hold is an invalid argument.
func TestMCPReadsWithMinSeq(t *testing.T) {
	g := newGate()
	l := startLedger(t, withProjectionsHook(g.hook))
	t.Cleanup(g.release) // before the ledger stops
	c := mcpHTTP(t, l, nil)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "first light", "project": "lab"})
	out := c.call(t, "get_memory", map[string]any{"id": m.ID})
	require.Equal(t, m.Seq, positionOf(t, out))
	require.Equal(t, m.Seq, uint64(out["seq"].(float64)), "the memory's own seq is still its version")

	defer g.release()
	update, written := heldUpdate(t, l, g, m, "second light")

	// Without min_seq: served now, from where the projections are, and says so.
	out = c.call(t, "get_memory", map[string]any{"id": m.ID})
	require.Equal(t, "first light", out["content"])
	require.Equal(t, m.Seq, positionOf(t, out))

	calls := map[string]<-chan *mcp.CallToolResult{}
	for name, args := range map[string]map[string]any{
		"get_memory":        {"id": m.ID},
		"memory_history":    {"id": m.ID},
		"list_memories":     {"status": "active"},
		"search_memories":   {"query": "second"},
		"get_project_state": {"project": "lab"},
		"list_projects":     {},
		"review_queue":      {},
	} {
		args["min_seq"] = written
		calls[name] = c.callAsync(name, args)
	}
	for name, ch := range calls {
		requireToolWaiting(t, ch, name+" with min_seq")
	}
	g.release()
	for name, ch := range calls {
		out := toolResult(t, ch)
		require.GreaterOrEqual(t, positionOf(t, out), written, name)
		switch name {
		case "get_memory":
			require.Equal(t, "second light", out["content"])
		case "memory_history":
			require.Len(t, out["entries"], 2)
		case "search_memories":
			require.Len(t, out["hits"], 1, "the index has the update")
		}
	}
	require.Equal(t, http.StatusOK, receive(t, update).Status)

	// after_seq, the search's older name for it, still waits too.
	out = c.call(t, "search_memories", map[string]any{"query": "second", "after_seq": written})
	require.GreaterOrEqual(t, positionOf(t, out), written)

	// A position the log does not hold is the caller's mistake.
	msg := c.callErr(t, "get_memory", map[string]any{"id": m.ID, "min_seq": written + 1000})
	require.Contains(t, msg, "invalid argument min_seq")
	require.Contains(t, msg, "beyond the log's end")
}

// An MCP read whose min_seq the projections do not reach within --read-wait is a tool error
// that says where they are and to retry (the HTTP reads' 503).
func TestMCPMinSeqNotReached(t *testing.T) {
	g := newGate()
	l := startLedger(t, withProjectionsHook(g.hook), withConfig(func(c *app.Config) { c.ReadWait = 200 * time.Millisecond }))
	t.Cleanup(g.release) // before the ledger stops
	c := mcpHTTP(t, l, nil)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "first"})
	defer g.release()
	update, written := heldUpdate(t, l, g, m, "second")
	msg := c.callErr(t, "list_memories", map[string]any{"min_seq": written})
	require.Contains(t, msg, "not readable yet")
	require.Contains(t, msg, fmt.Sprintf("position %d, behind %d", m.Seq, written))
	require.Contains(t, msg, "retry")
	g.release()
	require.Equal(t, http.StatusOK, receive(t, update).Status)
}

// The change feed takes min_seq and Memledger-Min-Seq like every read: it waits for them,
// answers Memledger-Position, and refuses a position beyond the log's end.
func TestChangeFeedMinSeq(t *testing.T) {
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "fed"})
	res := l.expect(http.StatusOK, "GET", fmt.Sprintf("/events?to=%d&min_seq=%d", m.Seq, m.Seq), nil)
	require.GreaterOrEqual(t, position(t, res), m.Seq)
	res = l.expect(http.StatusOK, "GET", fmt.Sprintf("/events?to=%d", m.Seq), nil, "Memledger-Min-Seq", strconv.FormatUint(m.Seq, 10))
	require.GreaterOrEqual(t, position(t, res), m.Seq)
	require.Contains(t, string(res.Body), m.ID)
	requireProblem(t, l.do("GET", fmt.Sprintf("/events?to=%d&min_seq=%d", m.Seq, m.Seq+1000), nil), http.StatusBadRequest, "min_seq", "beyond the log's end")
	requireProblem(t, l.do("GET", "/events", nil, "Memledger-Min-Seq", "x"), http.StatusBadRequest, "Memledger-Min-Seq")
}

// While the projections catch up after a start, an MCP read (a tool or a resource) waits for them (here without
// authentication, so that /mcp itself does not wait for them) instead of answering from
// projections that lack acknowledged memories.
func TestMCPReadsWaitWhileCatchingUp(t *testing.T) {
	g := newGate()
	l := startLedger(t, withProjectionsHook(g.hook), withConfig(func(c *app.Config) { c.Auth = app.AuthOff }))
	t.Cleanup(g.release) // before the ledger stops
	var id string
	for i := range 20 {
		id = l.mem(map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("fact %d", i)}).ID
	}
	last := l.lastSeq()
	l.stop()
	require.NoError(t, os.Remove(l.cfg.ProjectionsPath()))
	g.hold()
	l.start()
	g.waitHeld(t)
	c := mcpHTTP(t, l, nil)
	read := c.callAsync("get_memory", map[string]any{"id": id})
	list := c.callAsync("list_memories", map[string]any{"limit": 50})
	resource := make(chan *mcp.ReadResourceResult, 1)
	go func() {
		res, err := c.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "memory://" + id})
		if err != nil {
			res = &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{Text: "error: " + err.Error()}}}
		}
		resource <- res
	}()
	requireToolWaiting(t, read, "a read of an acknowledged memory")
	requireToolWaiting(t, list, "a list")
	select {
	case res := <-resource:
		t.Fatalf("the memory's resource was read while the projections were held back: %+v", res.Contents[0])
	case <-time.After(300 * time.Millisecond):
	}
	g.release()
	out := toolResult(t, read)
	require.Equal(t, "fact 19", out["content"])
	require.GreaterOrEqual(t, positionOf(t, out), last)
	out = toolResult(t, list)
	require.Len(t, out["memories"], 20)
	require.GreaterOrEqual(t, positionOf(t, out), last)
	select {
	case res := <-resource:
		require.Contains(t, res.Contents[0].Text, `"content":"fact 19"`, "the resource, once caught up")
	case <-time.After(60 * time.Second):
		t.Fatal("the resource read did not answer")
	}
}
