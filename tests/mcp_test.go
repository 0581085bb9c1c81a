package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// headers adds fixed headers to every request of an MCP client. Its requests are JSON-RPC
// messages to /mcp, which the OpenAPI description of the REST API leaves to the MCP
// specification: they go on a transport of their own, not the one the tests validate.
type headers map[string]string

// mcpTransport carries the admin token like the tests' other requests.
var mcpTransport http.RoundTripper = tokenTransport{next: &http.Transport{}}

func (h headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return mcpTransport.RoundTrip(r)
}

// mcpClient is an MCP client session and the resource updates it has heard of.
type mcpClient struct {
	*mcp.ClientSession
	mu      sync.Mutex
	updated []string
}

func (c *mcpClient) heard(uri string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.updated, uri)
}

// forget drops the updates heard so far.
func (c *mcpClient) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.updated = nil
}

func newMCPClient() (*mcp.Client, *mcpClient) {
	c := &mcpClient{}
	client := mcp.NewClient(&mcp.Implementation{Name: "memledger-tests", Version: "1"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			c.mu.Lock()
			c.updated = append(c.updated, req.Params.URI)
			c.mu.Unlock()
		},
	})
	return client, c
}

// mcpHTTP connects an MCP client to the ledger's /mcp with the given request headers.
func mcpHTTP(t testing.TB, l *ledger, h headers) *mcpClient {
	t.Helper()
	client, c := newMCPClient()
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: l.URL + "/mcp",
		HTTPClient: &http.Client{Transport: h}}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { cs.Close() })
	c.ClientSession = cs
	return c
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// memledgerBinary builds the memledger command once for the tests that run it.
func memledgerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "memledger-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "memledger")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/memledger/memledger/cmd/memledger").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// mcpStdio runs `memledger mcp` with args and connects an MCP client to it over its stdin and
// stdout; stderr collects what the command says.
func mcpStdio(t testing.TB, stderr *lockedWriter, args ...string) *mcpClient {
	t.Helper()
	cmd := exec.Command(memledgerBinary(t), append([]string{"mcp"}, args...)...)
	cmd.Stderr = stderr
	client, c := newMCPClient()
	cs, err := client.Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { cs.Close() })
	c.ClientSession = cs
	return c
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// String is what was written so far; the command may still be writing.
func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// call calls a tool and returns its structured result, failing the test on a tool error.
func (c *mcpClient) call(t testing.TB, name string, args map[string]any) map[string]any {
	t.Helper()
	res, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err, name)
	require.False(t, res.IsError, "%s: %s", name, toolText(res))
	var out map[string]any
	data, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &out), "%s: %s", name, data)
	return out
}

// callErr calls a tool that must answer with a tool error, and returns its text.
func (c *mcpClient) callErr(t testing.TB, name string, args map[string]any) string {
	t.Helper()
	res, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err, "%s must answer with a tool error, not a protocol failure", name)
	require.True(t, res.IsError, "%s(%v) must fail: %s", name, args, toolText(res))
	return toolText(res)
}

func toolText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// memoryOf is the memory of a write tool's answer.
func memoryOf(t testing.TB, out map[string]any) (string, uint64, string) {
	t.Helper()
	m, ok := out["memory"].(map[string]any)
	require.True(t, ok, "answer without a memory: %v", out)
	return m["id"].(string), uint64(out["seq"].(float64)), m["status"].(string)
}

// allTools are the tools a principal with every role has.
var allTools = []string{"get_memory", "get_project_state", "invalidate_memory", "list_memories", "list_projects", "memory_history",
	"promote", "reinforce", "reject", "remember", "review_queue", "search_memories", "set_project_state", "supersede_memory", "update_memory"}

// mcpToolSuite runs every tool's happy path and a bad-argument path through c, and checks
// that the audit names actor as the author of the changes.
func mcpToolSuite(t *testing.T, l *ledger, c *mcpClient, actor string) {
	ctx := context.Background()
	// The tool list and its schemas.
	var names []string
	schemas := map[string]map[string]any{}
	for tool, err := range c.Tools(ctx, nil) {
		require.NoError(t, err)
		names = append(names, tool.Name)
		require.NotEmpty(t, tool.Description, tool.Name)
		data, err := json.Marshal(tool.InputSchema)
		require.NoError(t, err)
		var s map[string]any
		require.NoError(t, json.Unmarshal(data, &s))
		require.Equal(t, "object", s["type"], tool.Name)
		schemas[tool.Name] = s
	}
	slices.Sort(names)
	require.Equal(t, allTools, names)
	require.ElementsMatch(t, []any{"content", "memory_type"}, schemas["remember"]["required"])
	for _, field := range []string{"content", "memory_type", "project", "domain_tags", "confidence", "note", "idempotency_key"} {
		require.Contains(t, schemas["remember"]["properties"], field)
	}
	for _, field := range []string{"id", "superseded_by", "reason", "idempotency_key", "expected_seq"} {
		require.Contains(t, schemas["supersede_memory"]["properties"], field)
	}
	require.Contains(t, schemas["search_memories"]["properties"], "query")

	// remember: a candidate, whatever the assistant would like.
	out := c.call(t, "remember", map[string]any{"content": "The laser's wavelength is 1064 nm", "memory_type": "knowledge",
		"domain_tags": []string{"optics"}, "confidence": 0.6, "note": "read in the lab notebook"})
	id, seq, status := memoryOf(t, out)
	require.Equal(t, "candidate", status)
	require.Contains(t, c.callErr(t, "remember", map[string]any{"content": "x", "memory_type": "gossip"}), "memory_type")
	require.Contains(t, c.callErr(t, "remember", map[string]any{"memory_type": "knowledge"}), "content")
	require.Contains(t, c.callErr(t, "remember", map[string]any{"content": "x", "memory_type": "knowledge", "colour": "red"}), "colour")

	// get_memory
	got := c.call(t, "get_memory", map[string]any{"id": id})
	require.Equal(t, "The laser's wavelength is 1064 nm", got["content"])
	require.Contains(t, c.callErr(t, "get_memory", map[string]any{"id": "no-such-memory"}), "not found")
	require.Contains(t, c.callErr(t, "get_memory", map[string]any{}), "id")

	// review_queue, then promote
	queue := c.call(t, "review_queue", nil)
	require.Len(t, queue["memories"], 1)
	require.Contains(t, c.callErr(t, "review_queue", map[string]any{"limit": 5000}), "limit")
	out = c.call(t, "promote", map[string]any{"id": id, "note": "checked", "expected_seq": seq})
	_, seq, status = memoryOf(t, out)
	require.Equal(t, "active", status)
	require.Contains(t, c.callErr(t, "promote", map[string]any{"id": id}), "conflict")

	// search_memories
	res := c.call(t, "search_memories", map[string]any{"query": "laser wavelength", "domain_tags": []string{"optics"}, "after_seq": seq})
	hits := res["hits"].([]any)
	require.Len(t, hits, 1)
	require.Contains(t, hits[0].(map[string]any)["snippet"], "<mark>")
	require.Contains(t, c.callErr(t, "search_memories", map[string]any{"query": "laser", "status": "maybe"}), "status")
	require.Contains(t, c.callErr(t, "search_memories", map[string]any{"query": ""}), "query")

	// reinforce, with a stale expected_seq first
	stale := c.callErr(t, "reinforce", map[string]any{"id": id, "expected_seq": seq - 1})
	require.Contains(t, stale, "conflict")
	require.Contains(t, stale, "expected_seq")
	out = c.call(t, "reinforce", map[string]any{"id": id, "expected_seq": seq})
	_, seq, _ = memoryOf(t, out)
	require.Contains(t, c.callErr(t, "reinforce", map[string]any{"id": id, "delta": 7}), "delta")

	// update_memory
	out = c.call(t, "update_memory", map[string]any{"id": id, "content": "The laser's wavelength is 1064 nm (Nd:YAG)", "expected_seq": seq})
	_, seq, _ = memoryOf(t, out)
	require.Contains(t, c.callErr(t, "update_memory", map[string]any{"id": id, "confidence": 3}), "confidence")
	require.Contains(t, c.callErr(t, "update_memory", map[string]any{"id": id, "idempotency_key": "has spaces"}), "idempotency_key")

	// list_memories
	list := c.call(t, "list_memories", map[string]any{"status": "active", "limit": 10})
	require.Len(t, list["memories"], 1)
	require.Contains(t, c.callErr(t, "list_memories", map[string]any{"cursor": "soon"}), "cursor")

	// supersede_memory, invalidate_memory, reject
	newer, _, _ := memoryOf(t, c.call(t, "remember", map[string]any{"content": "The laser is now a 532 nm one", "memory_type": "knowledge"}))
	require.Contains(t, c.callErr(t, "supersede_memory", map[string]any{"id": id}), "superseded_by")
	require.Contains(t, c.callErr(t, "supersede_memory", map[string]any{"id": id, "superseded_by": "missing"}), "superseded_by")
	c.call(t, "promote", map[string]any{"id": newer})
	_, _, status = memoryOf(t, c.call(t, "supersede_memory", map[string]any{"id": id, "superseded_by": newer, "reason": "replaced", "expected_seq": seq}))
	require.Equal(t, "superseded", status)
	_, _, status = memoryOf(t, c.call(t, "invalidate_memory", map[string]any{"id": newer, "reason": "wrong"}))
	require.Equal(t, "invalid", status)
	require.Contains(t, c.callErr(t, "invalidate_memory", map[string]any{"id": newer}), "conflict")
	third, _, _ := memoryOf(t, c.call(t, "remember", map[string]any{"content": "A guess", "memory_type": "episodic"}))
	_, _, status = memoryOf(t, c.call(t, "reject", map[string]any{"id": third, "note": "a guess"}))
	require.Equal(t, "invalid", status)
	require.Contains(t, c.callErr(t, "reject", map[string]any{"id": third}), "conflict")

	// memory_history: every change, under the principal's name
	hist := c.call(t, "memory_history", map[string]any{"id": id})
	entries := hist["entries"].([]any)
	require.Len(t, entries, 5) // created, promoted, reinforced, updated, superseded
	for _, e := range entries {
		require.Equal(t, actor, e.(map[string]any)["actor"])
	}
	for _, e := range l.auditOf(id) {
		require.Equal(t, actor, e.Actor)
	}
	require.Contains(t, c.callErr(t, "memory_history", map[string]any{"id": "nope"}), "not found")

	// projects and their state
	l.expect(http.StatusCreated, "POST", "/projects", map[string]any{"id": "p-laser", "aliases": []string{"laser"}})
	projects := c.call(t, "list_projects", nil)
	require.Len(t, projects["projects"], 1)
	st := c.call(t, "set_project_state", map[string]any{"project": "laser", "category": "status", "key": "phase", "value": "alignment"})
	require.Equal(t, "p-laser", st["project"])
	require.Contains(t, c.callErr(t, "set_project_state", map[string]any{"project": "laser", "category": "Not Valid", "key": "k", "value": "v"}), "category")
	state := c.call(t, "get_project_state", map[string]any{"project": "p-laser"})
	require.Len(t, state["entries"], 1)
	require.Contains(t, c.callErr(t, "get_project_state", map[string]any{}), "project")
}

func TestMCPOverHTTP(t *testing.T) {
	l := startLedger(t)
	c := mcpHTTP(t, l, headers{"X-Actor": "assistant-1"})
	mcpToolSuite(t, l, c, "assistant-1")
}

func TestMCPOverStdioOnTheDataDirectory(t *testing.T) {
	dir := t.TempDir()
	stderr := &lockedWriter{b: new(strings.Builder)}
	c := mcpStdio(t, stderr, "--data", dir, "--addr", "127.0.0.1:1", "--nats-listen", "")
	require.Contains(t, stderr.String(), "opening the data directory "+dir)
	// The suite checks the audit over HTTP: the command serves it on its own listener, which
	// a test cannot reach, so it reads the audit through the tools only.
	ctx := context.Background()
	var names []string
	for tool, err := range c.Tools(ctx, nil) {
		require.NoError(t, err)
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	require.Equal(t, allTools, names)
	id, _, _ := memoryOf(t, c.call(t, "remember", map[string]any{"content": "stdio works", "memory_type": "knowledge"}))
	hist := c.call(t, "memory_history", map[string]any{"id": id})
	require.Equal(t, "mcp-stdio", hist["entries"].([]any)[0].(map[string]any)["actor"])
	require.Contains(t, c.callErr(t, "get_memory", map[string]any{"id": ""}), "id")
	require.NoError(t, c.Close())
}

func TestMCPOverStdioThroughTheService(t *testing.T) {
	l := startLedger(t)
	stderr := &lockedWriter{b: new(strings.Builder)}
	c := mcpStdio(t, stderr, "--addr", strings.TrimPrefix(l.URL, "http://"), "--data", t.TempDir(), "--token", adminToken(t, l.cfg.Data))
	require.Contains(t, stderr.String(), "talking to the running service at "+l.URL)
	mcpToolSuite(t, l, c, principal) // the token it sends
}

func TestMCPIdempotentRemember(t *testing.T) {
	l := startLedger(t)
	c := mcpHTTP(t, l, nil)
	args := map[string]any{"content": "Retried proposals are written once", "memory_type": "knowledge", "idempotency_key": "remember-42"}
	first := c.call(t, "remember", args)
	before := l.lastSeq()
	second := c.call(t, "remember", args)
	id1, seq1, _ := memoryOf(t, first)
	id2, seq2, _ := memoryOf(t, second)
	require.Equal(t, id1, id2)
	require.Equal(t, seq1, seq2)
	require.Equal(t, true, second["replayed"])
	require.Equal(t, before, l.lastSeq(), "the retry wrote nothing")
	require.Len(t, l.auditOf(id1), 1)
	// The same key for another request is a conflict.
	args["content"] = "something else"
	require.Contains(t, c.callErr(t, "reinforce", map[string]any{"id": id1, "idempotency_key": "remember-42"}), "conflict")
}

func TestMCPResourceUpdates(t *testing.T) {
	l := startLedger(t)
	c := mcpHTTP(t, l, nil)
	ctx := context.Background()
	m := l.create(map[string]any{"content": "Watched memory", "memory_type": "knowledge", "status": "candidate"})
	id := m["id"].(string)
	read, err := c.ReadResource(ctx, &mcp.ReadResourceParams{URI: "memory://" + id})
	require.NoError(t, err)
	require.Contains(t, read.Contents[0].Text, "Watched memory")
	require.NoError(t, c.Subscribe(ctx, &mcp.SubscribeParams{URI: "memory://" + id}))
	require.NoError(t, c.Subscribe(ctx, &mcp.SubscribeParams{URI: "memledger://review-queue"}))

	// Once the client's event stream is up (a change is heard of), a change made elsewhere
	// (the HTTP API) is heard of, and the resource shows it.
	changeUntilHeard(t, c, "memory://"+id, func() { l.expect(http.StatusOK, "POST", "/memory/"+id+"/reinforce", map[string]any{}) })
	c.mu.Lock()
	c.updated = nil
	c.mu.Unlock()
	l.expect(http.StatusOK, "POST", "/memory/"+id+"/promote", nil)
	eventually(t, func() bool { return c.heard("memory://" + id) }, "no update of memory://"+id)
	eventually(t, func() bool { return c.heard("memledger://review-queue") }, "no update of the review queue")
	read, err = c.ReadResource(ctx, &mcp.ReadResourceParams{URI: "memory://" + id})
	require.NoError(t, err)
	var got domain.Memory
	require.NoError(t, json.Unmarshal([]byte(read.Contents[0].Text), &got))
	require.Equal(t, domain.StatusActive, got.Status)

	_, err = c.ReadResource(ctx, &mcp.ReadResourceParams{URI: "memory://missing"})
	require.Error(t, err)
	require.Error(t, c.Subscribe(ctx, &mcp.SubscribeParams{URI: "file:///etc/passwd"}))
}

func TestMCPResourceUpdatesOverStdio(t *testing.T) {
	l := startLedger(t)
	stderr := &lockedWriter{b: new(strings.Builder)}
	c := mcpStdio(t, stderr, "--addr", strings.TrimPrefix(l.URL, "http://"), "--data", t.TempDir(), "--token", adminToken(t, l.cfg.Data))
	ctx := context.Background()
	id := l.create(map[string]any{"content": "Watched over stdio", "memory_type": "knowledge"})["id"].(string)
	require.NoError(t, c.Subscribe(ctx, &mcp.SubscribeParams{URI: "memory://" + id}))
	// The notification rides the bridge's event stream from the service, which the bridge opens
	// on its own after the handshake: a change made before that stream is up is not heard of,
	// so the test changes the memory until a notification arrives.
	changeUntilHeard(t, c, "memory://"+id, func() { l.expect(http.StatusOK, "POST", "/memory/"+id+"/reinforce", map[string]any{}) })
}

// changeUntilHeard makes a change every half second until c hears that uri was updated.
func changeUntilHeard(t *testing.T, c *mcpClient, uri string, change func()) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !c.heard(uri) {
		require.True(t, time.Now().Before(deadline), "no update of %s", uri)
		change()
		for i := 0; i < 25 && !c.heard(uri); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// The resource updates stop following the log while no session is live and follow it again
// from the log's end when a session begins: a session that begins after every other ended
// hears of the changes made after it subscribed.
func TestMCPResourceUpdatesAfterEverySessionEnded(t *testing.T) {
	l := startLedger(t)
	ctx := context.Background()
	id := l.create(map[string]any{"content": "Watched by two sessions", "memory_type": "knowledge"})["id"].(string)
	first := mcpHTTP(t, l, nil)
	require.NoError(t, first.Subscribe(ctx, &mcp.SubscribeParams{URI: "memory://" + id}))
	changeUntilHeard(t, first, "memory://"+id, func() { l.expect(http.StatusOK, "POST", "/memory/"+id+"/reinforce", map[string]any{}) })
	require.NoError(t, first.Close())

	// Changes while no session is live: the follow sees one and stops.
	time.Sleep(200 * time.Millisecond)
	for range 3 {
		l.create(map[string]any{"content": "Written while nobody listens", "memory_type": "knowledge"})
		time.Sleep(50 * time.Millisecond)
	}

	second := mcpHTTP(t, l, nil)
	require.NoError(t, second.Subscribe(ctx, &mcp.SubscribeParams{URI: "memory://" + id}))
	changeUntilHeard(t, second, "memory://"+id, func() { l.expect(http.StatusOK, "POST", "/memory/"+id+"/reinforce", map[string]any{}) })
}
