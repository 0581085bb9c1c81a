package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Paging of list_memories and review_queue.
const (
	defaultListLimit = 20
	maxListLimit     = 200
)

// SearchArgs are the arguments of search_memories.
type SearchArgs struct {
	Query          string   `json:"query" jsonschema:"the words to search for in the content and tags; \"quoted phrases\", prefixes (lase*), +required and -excluded terms"`
	Status         string   `json:"status,omitempty" jsonschema:"candidate, active (the default), superseded, invalid, or all"`
	MemoryType     string   `json:"memory_type,omitempty" jsonschema:"only memories of this type (identity, preference, project, episodic, knowledge, adaptation)"`
	Project        string   `json:"project,omitempty" jsonschema:"only memories of this project (an id or an alias)"`
	DomainTags     []string `json:"domain_tags,omitempty" jsonschema:"only memories having all of these tags"`
	IncludeExpired bool     `json:"include_expired,omitempty" jsonschema:"also memories whose valid_until has passed"`
	Limit          int      `json:"limit,omitempty" jsonschema:"most hits returned, 1 to 100 (default 20)"`
	Cursor         string   `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page"`
	AfterSeq       uint64   `json:"after_seq,omitempty" jsonschema:"the same as min_seq (kept for older clients)"`
	ReadOptions
}

// IDArgs name one memory.
type IDArgs struct {
	ID string `json:"id" jsonschema:"the memory's id"`
	ReadOptions
}

// ListArgs are the arguments of list_memories.
type ListArgs struct {
	Status     string `json:"status,omitempty" jsonschema:"only memories with this status: candidate, active, superseded or invalid"`
	MemoryType string `json:"memory_type,omitempty" jsonschema:"only memories of this type"`
	Project    string `json:"project,omitempty" jsonschema:"only memories of this project (an id or an alias)"`
	Limit      int    `json:"limit,omitempty" jsonschema:"most memories returned, 1 to 200 (default 20)"`
	Cursor     string `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page"`
	ReadOptions
}

// StateArgs are the arguments of get_project_state.
type StateArgs struct {
	Project        string `json:"project" jsonschema:"the project (an id or an alias)"`
	Category       string `json:"category,omitempty" jsonschema:"only entries of this category"`
	IncludeInvalid bool   `json:"include_invalid,omitempty" jsonschema:"also invalidated entries"`
	ReadOptions
}

// ProjectsArgs are the arguments of list_projects.
type ProjectsArgs struct {
	ReadOptions
}

func (t tools) addRead(srv *mcp.Server) {
	ro := &mcp.ToolAnnotations{ReadOnlyHint: true}
	mcp.AddTool(srv, &mcp.Tool{Name: "search_memories", Annotations: ro,
		Description: "Full-text search over memories (BM25 over content and tags), best match first, each hit with a highlighted snippet. By default only active memories that have not expired. Use it before remember, to avoid proposing what is already known."},
		t.search)
	mcp.AddTool(srv, &mcp.Tool{Name: "get_memory", Annotations: ro,
		Description: "One memory by id, as it is now: content, type, project, tags, confidence, status, and seq (its version, to pass as expected_seq to a write)."},
		t.getMemory)
	mcp.AddTool(srv, &mcp.Tool{Name: "list_memories", Annotations: ro,
		Description: "Memories newest first, filtered by status, memory_type and project, a page at a time (pass next_cursor back as cursor)."},
		t.listMemories)
	mcp.AddTool(srv, &mcp.Tool{Name: "memory_history", Annotations: ro,
		Description: "The audit of one memory, oldest first: every change, who made it (actor), when, the note given, and the memory before and after."},
		t.history)
	mcp.AddTool(srv, &mcp.Tool{Name: "get_project_state", Annotations: ro,
		Description: "The state entries of a project (category, key, value, source, confidence): its current facts, such as status, decisions and next steps."},
		t.getState)
	mcp.AddTool(srv, &mcp.Tool{Name: "list_projects", Annotations: ro,
		Description: "The registered projects with their aliases and descriptions."},
		t.listProjects)
}

// raw answers a tool with JSON the projections hold.
func raw(data []byte) (*mcp.CallToolResult, any, error) {
	return nil, json.RawMessage(data), nil
}

func (t tools) search(ctx context.Context, _ *mcp.CallToolRequest, a SearchArgs) (*mcp.CallToolResult, any, error) {
	q := projections.SearchQuery{Text: a.Query, Now: t.s.Now(), IncludeExpired: a.IncludeExpired, Limit: a.Limit}
	if a.Query == "" {
		return nil, nil, toolError(domain.Invalid("query", "is required: the words to search for"))
	}
	var err error
	switch a.Status {
	case "", string(projections.StatusAll):
		q.Status = domain.Status(a.Status)
	default:
		if q.Status, err = domain.ParseStatus(a.Status); err != nil {
			return nil, nil, toolError(fmt.Errorf("%w (or all)", err))
		}
	}
	if a.MemoryType != "" {
		if q.MemoryType, err = domain.ParseMemoryType(a.MemoryType); err != nil {
			return nil, nil, toolError(err)
		}
	}
	if q.Project, err = domain.NormalizeProject(a.Project); err != nil {
		return nil, nil, toolError(err)
	}
	if q.Tags, err = domain.NormalizeTags(a.DomainTags, t.s.Rules.MaxTags, t.s.Rules.MaxTagLength); err != nil {
		return nil, nil, toolError(err)
	}
	if a.Limit < 0 || a.Limit > projections.MaxSearchLimit {
		return nil, nil, toolError(domain.Invalid("limit", "must be from 1 to %d, got %d", projections.MaxSearchLimit, a.Limit))
	}
	if a.Cursor != "" {
		if q.Offset, err = strconv.Atoi(a.Cursor); err != nil || q.Offset < 1 || q.Offset > projections.MaxSearchOffset {
			return nil, nil, toolError(domain.Invalid("cursor", "%q is not a next_cursor of search_memories", a.Cursor))
		}
	}
	position, err := t.s.served(ctx, max(a.MinSeq, a.AfterSeq), true)
	if err != nil {
		return nil, nil, toolError(err)
	}
	res, err := t.s.Search.Search(ctx, q)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, struct {
		Query      string                  `json:"query"`
		Hits       []projections.SearchHit `json:"hits"`
		Total      uint64                  `json:"total"`
		NextCursor string                  `json:"next_cursor,omitempty"`
		IndexedSeq uint64                  `json:"indexed_seq"`
		Position   uint64                  `json:"position"`
	}{a.Query, res.Hits, res.Total, cursorOf(uint64(res.NextOffset)), res.IndexedSeq, position}, nil
}

func cursorOf(n uint64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(n, 10)
}

// memoryJSON is memory id's JSON, or a not-found error naming the id.
func (t tools) memoryJSON(id string) ([]byte, error) {
	if id == "" {
		return nil, domain.Invalid("id", "is required: the memory's id")
	}
	data, err := t.s.DB.GetMemory(id)
	if err == nil && data == nil {
		err = fmt.Errorf("memory %s: %w", id, domain.ErrNotFound)
	}
	return data, err
}

func (t tools) getMemory(ctx context.Context, _ *mcp.CallToolRequest, a IDArgs) (*mcp.CallToolResult, any, error) {
	position, err := t.s.served(ctx, a.MinSeq, false)
	if err != nil {
		return nil, nil, toolError(err)
	}
	data, err := t.memoryJSON(a.ID)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return raw(withPosition(data, position))
}

// withPosition adds the log position a read was served at to a JSON object as "position".
func withPosition(obj []byte, position uint64) []byte {
	obj = bytes.TrimRight(obj, " \n")
	if len(obj) < 2 || obj[len(obj)-1] != '}' {
		return obj
	}
	sep := ","
	if len(bytes.TrimSpace(obj[1:len(obj)-1])) == 0 {
		sep = ""
	}
	return append(obj[:len(obj)-1:len(obj)-1], sep+`"position":`+strconv.FormatUint(position, 10)+"}"...)
}

// listFilter reads the filters and paging of a list.
func (t tools) listFilter(a ListArgs) (projections.MemoryFilter, error) {
	f := projections.MemoryFilter{Limit: a.Limit}
	var err error
	if a.Status != "" {
		if f.Status, err = domain.ParseStatus(a.Status); err != nil {
			return f, err
		}
	}
	if a.MemoryType != "" {
		if f.MemoryType, err = domain.ParseMemoryType(a.MemoryType); err != nil {
			return f, err
		}
	}
	if f.Project, err = t.s.Ledger.Project(a.Project); err != nil {
		return f, err
	}
	switch {
	case a.Limit == 0:
		f.Limit = defaultListLimit
	case a.Limit < 0 || a.Limit > maxListLimit:
		return f, domain.Invalid("limit", "must be from 1 to %d, got %d", maxListLimit, a.Limit)
	}
	if a.Cursor != "" {
		if f.Before, err = strconv.ParseUint(a.Cursor, 10, 64); err != nil || f.Before == 0 {
			return f, domain.Invalid("cursor", "%q is not a next_cursor of an earlier page", a.Cursor)
		}
	}
	return f, nil
}

// list answers a list of memories with the cursor of its next page, once the projections
// reflect what o asks.
func (t tools) list(ctx context.Context, f projections.MemoryFilter, o ReadOptions) (*mcp.CallToolResult, any, error) {
	position, err := t.s.served(ctx, o.MinSeq, false)
	if err != nil {
		return nil, nil, toolError(err)
	}
	mems, next, err := t.s.DB.ListMemories(f)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, struct {
		Memories   []json.RawMessage `json:"memories"`
		NextCursor string            `json:"next_cursor,omitempty"`
		Position   uint64            `json:"position"`
	}{mems, cursorOf(next), position}, nil
}

func (t tools) listMemories(ctx context.Context, _ *mcp.CallToolRequest, a ListArgs) (*mcp.CallToolResult, any, error) {
	f, err := t.listFilter(a)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return t.list(ctx, f, a.ReadOptions)
}

func (t tools) history(ctx context.Context, _ *mcp.CallToolRequest, a IDArgs) (*mcp.CallToolResult, any, error) {
	position, err := t.s.served(ctx, a.MinSeq, false)
	if err != nil {
		return nil, nil, toolError(err)
	}
	if _, err := t.memoryJSON(a.ID); err != nil {
		return nil, nil, toolError(err)
	}
	entries, err := t.s.DB.MemoryAudit(a.ID)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, struct {
		MemoryID string            `json:"memory_id"`
		Entries  []json.RawMessage `json:"entries"`
		Position uint64            `json:"position"`
	}{a.ID, entries, position}, nil
}

func (t tools) getState(ctx context.Context, _ *mcp.CallToolRequest, a StateArgs) (*mcp.CallToolResult, any, error) {
	if a.Project == "" {
		return nil, nil, toolError(domain.Invalid("project", "is required (list_projects names them)"))
	}
	position, err := t.s.served(ctx, a.MinSeq, false)
	if err != nil {
		return nil, nil, toolError(err)
	}
	project, err := t.s.Ledger.Project(a.Project)
	if err != nil {
		return nil, nil, toolError(err)
	}
	entries, err := t.s.DB.ListState(projections.StateFilter{Project: project, Category: a.Category, All: a.IncludeInvalid})
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, struct {
		Project  string            `json:"project"`
		Entries  []json.RawMessage `json:"entries"`
		Position uint64            `json:"position"`
	}{project, entries, position}, nil
}

func (t tools) listProjects(ctx context.Context, _ *mcp.CallToolRequest, a ProjectsArgs) (*mcp.CallToolResult, any, error) {
	position, err := t.s.served(ctx, a.MinSeq, false)
	if err != nil {
		return nil, nil, toolError(err)
	}
	projects, err := t.s.DB.ListProjects()
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, struct {
		Projects []json.RawMessage `json:"projects"`
		Position uint64            `json:"position"`
	}{projects, position}, nil
}
