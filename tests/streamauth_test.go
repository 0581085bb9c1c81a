package tests

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/handlers/auth"
)

// openStream opens GET path with the given headers (and no harness token) and returns a
// reader of its lines and the body to close.
func openStream(t *testing.T, l *ledger, path string, headers ...string) (*bufio.Reader, io.Closer) {
	t.Helper()
	return openStreamWith(t, http.DefaultClient, l, path, headers...)
}

func openStreamWith(t *testing.T, client *http.Client, l *ledger, path string, headers ...string) (*bufio.Reader, io.Closer) {
	t.Helper()
	req, err := http.NewRequest("GET", l.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set(noToken, "1")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := client.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	t.Cleanup(func() { res.Body.Close() })
	return bufio.NewReader(res.Body), res.Body
}

// lastLines reads the stream's lines until it ends (within a generous deadline) and returns
// them.
func lastLines(t *testing.T, rd *bufio.Reader, body io.Closer) []string {
	t.Helper()
	done := make(chan []string, 1)
	go func() {
		var lines []string
		for {
			line, err := rd.ReadString('\n')
			if line = strings.TrimSpace(line); line != "" {
				lines = append(lines, line)
			}
			if err != nil {
				done <- lines
				return
			}
		}
	}()
	select {
	case lines := <-done:
		return lines
	case <-time.After(30 * time.Second):
		body.Close()
		t.Fatal("the stream did not end within 30 s of its token's end")
		return nil
	}
}

// A long-lived answer ends once its token is revoked or expires, or its session ends, with a
// last line that says so: the change feed (NDJSON and Server-Sent Events) and the alert
// watch stream.
func TestStreamsEndWithTheirCredentials(t *testing.T) {
	clk := newClock(time.Now().UTC())
	l := startLedger(t, withClock(clk.Now))

	// The change feed, as NDJSON, with a token then revoked.
	feedTok := l.token("feed-reader", "reader", nil)
	rd, body := openStream(t, l, "/events?from=now", "Authorization", "Bearer "+feedTok)
	l.create(map[string]any{"memory_type": "knowledge", "content": "seen by the feed"})
	first, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, first, "seen by the feed")
	l.expect(http.StatusOK, "DELETE", "/admin/tokens/feed-reader", nil)
	lines := lastLines(t, rd, body)
	require.NotEmpty(t, lines)
	var end struct {
		End, Reason string
		NextFrom    uint64 `json:"next_from"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &end), lines)
	require.Equal(t, "unauthenticated", end.End)
	require.Contains(t, end.Reason, "revoked")
	require.Contains(t, end.Reason, "resume with from=")
	require.NotZero(t, end.NextFrom)

	// As Server-Sent Events, with a token that then expires.
	brief := l.token("brief-reader", "reader", map[string]any{"expires_at": clk.Now().Add(time.Hour).Format(time.RFC3339)})
	rd, body = openStream(t, l, "/events?from=now", "Authorization", "Bearer "+brief, "Accept", "text/event-stream")
	clk.Advance(2 * time.Hour)
	lines = lastLines(t, rd, body)
	require.GreaterOrEqual(t, len(lines), 2, lines)
	require.Equal(t, "event: end", lines[len(lines)-2])
	require.Contains(t, lines[len(lines)-1], `"end":"unauthenticated"`)
	require.Contains(t, lines[len(lines)-1], "expired")

	// The alert watch stream, with a token then revoked.
	watchTok := l.token("watcher", "reader", nil)
	rd, body = openStream(t, l, "/admin/alerts/watch", "Authorization", "Bearer "+watchTok)
	alertRaise(t, l, map[string]any{"title": "seen by the watcher"})
	first, err = rd.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, first, "seen by the watcher")
	l.expect(http.StatusOK, "DELETE", "/admin/tokens/watcher", nil)
	lines = lastLines(t, rd, body)
	require.Len(t, lines, 1)
	require.True(t, strings.HasPrefix(lines[0], `{"end":"unauthenticated","reason":"token watcher was revoked at `), lines[0])

	// A stream opened from a signed-in page ends when the session is signed out.
	pageTok := l.token("page-reader", "reader", nil)
	c := sessionOf(t, signInForm(t, l, pageTok))
	rd, body = openStream(t, l, "/events?from=now", "Cookie", auth.SessionCookie+"="+c.Value)
	req, err := http.NewRequest("POST", l.URL+"/ui/signout", nil)
	require.NoError(t, err)
	req.Header.Set(noToken, "1")
	req.AddCookie(c)
	out, err := noRedirects.Do(req)
	require.NoError(t, err)
	out.Body.Close()
	lines = lastLines(t, rd, body)
	require.NotEmpty(t, lines)
	require.Contains(t, lines[len(lines)-1], `"end":"unauthenticated"`)
	require.Contains(t, lines[len(lines)-1], "the session has ended")

	// A token still valid keeps its stream.
	keep := l.token("keeper", "reader", nil)
	rd, _ = openStream(t, l, "/events?from=now", "Authorization", "Bearer "+keep)
	time.Sleep(2 * auth.HoldCheck)
	l.create(map[string]any{"memory_type": "knowledge", "content": "still streaming"})
	line, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "still streaming")
}

// An MCP session's open stream over HTTP (the standalone Server-Sent Events stream) ends once
// its token is revoked; the session's next request is a 401 that says why.
func TestMCPStreamEndsWithItsToken(t *testing.T) {
	l := startLedger(t)
	tok := "Bearer " + l.token("assistant", "writer", nil)
	client := &http.Client{Transport: mcpTransport} // /mcp follows its own specification, not the OpenAPI document
	post := func(session, body string) *http.Response {
		req, err := http.NewRequest("POST", l.URL+"/mcp", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		return res
	}
	res := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`)
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	session := res.Header.Get("Mcp-Session-Id")
	require.NotEmpty(t, session)
	res = post(session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	require.Less(t, res.StatusCode, 300)

	rd, body := openStreamWith(t, client, l, "/mcp", "Authorization", tok, "Mcp-Session-Id", session, "Accept", "text/event-stream")
	l.expect(http.StatusOK, "DELETE", "/admin/tokens/assistant", nil)
	lastLines(t, rd, body) // ends, within the deadline

	res = post(session, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	data, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	require.Contains(t, string(data), "revoked")
}
