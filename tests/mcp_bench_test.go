package tests

import (
	"context"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// BenchmarkMCPToolCall times one get_memory tool call's round trip from the SDK's client: over
// the service's /mcp, over `memledger mcp` passing it on to the running service, and over
// `memledger mcp` on a data directory of its own; with a plain GET /memory/{id} beside them.
func BenchmarkMCPToolCall(b *testing.B) {
	l := startLedger(b)
	id := l.create(map[string]any{"content": "benchmarked memory", "memory_type": "knowledge"})["id"].(string)
	args := &mcp.CallToolParams{Name: "get_memory", Arguments: map[string]any{"id": id}}
	run := func(b *testing.B, c *mcpClient) {
		for b.Loop() {
			res, err := c.CallTool(context.Background(), args)
			if err != nil || res.IsError {
				b.Fatalf("get_memory: %v %v", err, res)
			}
		}
	}
	b.Run("http", func(b *testing.B) { run(b, mcpHTTP(b, l, nil)) })
	b.Run("stdio-via-service", func(b *testing.B) {
		run(b, mcpStdio(b, &lockedWriter{b: new(strings.Builder)}, "--addr", strings.TrimPrefix(l.URL, "http://"), "--data", b.TempDir()))
	})
	b.Run("stdio-on-data-dir", func(b *testing.B) {
		c := mcpStdio(b, &lockedWriter{b: new(strings.Builder)}, "--addr", "127.0.0.1:1", "--data", b.TempDir())
		out, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "remember",
			Arguments: map[string]any{"content": "benchmarked memory", "memory_type": "knowledge"}})
		require.NoError(b, err)
		require.False(b, out.IsError)
		own := out.StructuredContent.(map[string]any)["memory"].(map[string]any)["id"].(string)
		args := &mcp.CallToolParams{Name: "get_memory", Arguments: map[string]any{"id": own}}
		for b.Loop() {
			if res, err := c.CallTool(context.Background(), args); err != nil || res.IsError {
				b.Fatalf("get_memory: %v %v", err, res)
			}
		}
	})
	b.Run("plain-http-get", func(b *testing.B) {
		for b.Loop() {
			if res, err := l.send("GET", "/memory/"+id, nil); err != nil || res.Status != 200 {
				b.Fatalf("GET: %v %v", err, res.Status)
			}
		}
	})
}
