package tests

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// /mcp takes the bearer token like every route and acts as its principal with its role: a
// writer's session has no promote or reject and cannot review what it proposed; a reviewer's
// promotes under its own name; no token, an unknown or a revoked one is a 401.
func TestMCPActsAsTheToken(t *testing.T) {
	l := startLedger(t)
	writer := l.token("assistant", "writer", nil)
	reviewer := l.token("rita", "reviewer", nil)

	w := mcpHTTP(t, l, headers{"Authorization": "Bearer " + writer})
	var names []string
	for tool, err := range w.Tools(context.Background(), nil) {
		require.NoError(t, err)
		names = append(names, tool.Name)
	}
	require.Contains(t, names, "remember")
	for _, review := range []string{"promote", "reject", "review_queue"} {
		require.NotContains(t, names, review, "a writer's session is not offered %s", review)
	}
	id, _, status := memoryOf(t, w.call(t, "remember", map[string]any{"content": "the assistant's own guess", "memory_type": "knowledge"}))
	require.Equal(t, "candidate", status)
	before := l.lastSeq()
	res, err := w.CallTool(context.Background(), &mcp.CallToolParams{Name: "promote", Arguments: map[string]any{"id": id}})
	if err == nil {
		require.True(t, res.IsError, "a writer's promote must fail: %s", toolText(res))
	}
	require.Equal(t, before, l.lastSeq(), "nothing written")
	require.Equal(t, domain.StatusCandidate, l.get(id).Status)

	r := mcpHTTP(t, l, headers{"Authorization": "Bearer " + reviewer})
	_, _, status = memoryOf(t, r.call(t, "promote", map[string]any{"id": id, "note": "checked"}))
	require.Equal(t, "active", status)
	audit := l.auditOf(id)
	require.Equal(t, "assistant", audit[0].Actor)
	require.Equal(t, "assistant", audit[0].Principal)
	require.Equal(t, "rita", audit[1].Actor)
	require.Equal(t, "rita", audit[1].Principal)

	// X-Actor only with the on-behalf right, as on the REST API.
	for _, h := range []headers{{}, {"Authorization": "Bearer mlt_unknown"}, {"Authorization": "Bearer " + writer, "X-Actor": "rita"}} {
		client, _ := newMCPClient()
		if _, ok := h["Authorization"]; !ok {
			h[noToken] = "1"
		}
		_, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: l.URL + "/mcp",
			HTTPClient: &http.Client{Transport: h}}, nil)
		require.Error(t, err, "%v", h)
	}
	// Without a token /mcp answers a 401 problem, as every route does.
	req, err := http.NewRequest("POST", l.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(noToken, "1")
	raw, err := (&http.Client{Transport: mcpTransport}).Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(raw.Body)
	raw.Body.Close()
	require.NoError(t, err)
	requireProblem(t, response{Status: raw.StatusCode, Header: raw.Header, Body: body}, http.StatusUnauthorized, "", "send a token")

	// Revocation ends the session's rights on its next request.
	l.expect(http.StatusOK, "DELETE", "/admin/tokens/assistant", nil)
	_, err = w.CallTool(context.Background(), &mcp.CallToolParams{Name: "get_memory", Arguments: map[string]any{"id": id}})
	require.Error(t, err)
}

// memledger mcp through the service sends its token: the changes are the token's.
func TestMCPStdioSendsTheToken(t *testing.T) {
	l := startLedger(t)
	writer := l.token("desk-assistant", "writer", nil)
	stderr := &lockedWriter{b: new(strings.Builder)}
	c := mcpStdio(t, stderr, "--addr", strings.TrimPrefix(l.URL, "http://"), "--data", t.TempDir(), "--token", writer)
	id, _, _ := memoryOf(t, c.call(t, "remember", map[string]any{"content": "through stdio", "memory_type": "knowledge"}))
	require.Equal(t, "desk-assistant", l.auditOf(id)[0].Actor)
	require.Equal(t, "desk-assistant", l.auditOf(id)[0].Principal)
	require.Contains(t, c.callErr(t, "update_memory", map[string]any{"id": "nope", "content": "x"}), "not found")
	var names []string
	for tool, err := range c.Tools(context.Background(), nil) {
		require.NoError(t, err)
		names = append(names, tool.Name)
	}
	require.NotContains(t, names, "promote")
}
