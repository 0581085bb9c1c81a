package mcpserver

import (
	"context"
	"encoding/json"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// WriteOptions are the arguments every memory write takes.
type WriteOptions struct {
	IdempotencyKey string  `json:"idempotency_key,omitempty" jsonschema:"any unique string (a UUID); a retry with the same key returns the first answer and writes nothing new"`
	ExpectedSeq    *uint64 `json:"expected_seq,omitempty" jsonschema:"the memory's seq as you last read it: the write is refused as a conflict if the memory has changed since"`
}

func (o WriteOptions) ledger() ledger.MemoryOptions {
	return ledger.MemoryOptions{IdempotencyKey: o.IdempotencyKey, IfMatch: o.ExpectedSeq}
}

// RememberArgs are the arguments of remember.
type RememberArgs struct {
	Content        string   `json:"content" jsonschema:"the fact, preference or lesson, in one or a few sentences that stand on their own"`
	MemoryType     string   `json:"memory_type" jsonschema:"identity, preference, project, episodic, knowledge or adaptation"`
	Project        string   `json:"project,omitempty" jsonschema:"the project it belongs to (an id or an alias); empty for a global memory"`
	DomainTags     []string `json:"domain_tags,omitempty" jsonschema:"short lowercase tags"`
	Confidence     *float64 `json:"confidence,omitempty" jsonschema:"0 to 1, how sure you are"`
	Note           string   `json:"note,omitempty" jsonschema:"why this is worth remembering, for the reviewer"`
	IdempotencyKey string   `json:"idempotency_key,omitempty" jsonschema:"any unique string (a UUID); a retry with the same key returns the first answer and writes nothing new"`
}

// ReinforceArgs are the arguments of reinforce.
type ReinforceArgs struct {
	ID    string  `json:"id" jsonschema:"the memory's id"`
	Delta float64 `json:"delta,omitempty" jsonschema:"how much to raise its confidence, 0 to 1 (default: the ledger's usual step)"`
	Note  string  `json:"note,omitempty" jsonschema:"where it was confirmed"`
	WriteOptions
}

// UpdateArgs are the arguments of update_memory.
type UpdateArgs struct {
	ID         string    `json:"id" jsonschema:"the memory's id"`
	Content    *string   `json:"content,omitempty" jsonschema:"the new content"`
	MemoryType *string   `json:"memory_type,omitempty" jsonschema:"the new type"`
	DomainTags *[]string `json:"domain_tags,omitempty" jsonschema:"the new tags (replacing the old)"`
	Confidence *float64  `json:"confidence,omitempty" jsonschema:"the new confidence, 0 to 1"`
	Note       string    `json:"note,omitempty" jsonschema:"why it changed"`
	WriteOptions
}

// SupersedeArgs are the arguments of supersede_memory.
type SupersedeArgs struct {
	ID           string `json:"id" jsonschema:"the memory that is out of date"`
	SupersededBy string `json:"superseded_by" jsonschema:"the id of the memory that replaces it"`
	Reason       string `json:"reason,omitempty" jsonschema:"why it is superseded"`
	WriteOptions
}

// InvalidateArgs are the arguments of invalidate_memory.
type InvalidateArgs struct {
	ID     string `json:"id" jsonschema:"the memory that is wrong"`
	Reason string `json:"reason,omitempty" jsonschema:"why it is wrong"`
	WriteOptions
}

// SetStateArgs are the arguments of set_project_state.
type SetStateArgs struct {
	Project    string   `json:"project" jsonschema:"the project (an id or an alias)"`
	Category   string   `json:"category" jsonschema:"lowercase words joined by - or _, such as status or decision"`
	Key        string   `json:"key" jsonschema:"the entry's key within the category"`
	Value      string   `json:"value" jsonschema:"the entry's value"`
	Source     string   `json:"source,omitempty" jsonschema:"where the value comes from"`
	Confidence *float64 `json:"confidence,omitempty" jsonschema:"0 to 1"`
	Note       string   `json:"note,omitempty" jsonschema:"why it changed"`
}

func (t tools) addWrite(srv *mcp.Server) {
	idem := &mcp.ToolAnnotations{IdempotentHint: true}
	mcp.AddTool(srv, &mcp.Tool{Name: "remember", Annotations: idem,
		Description: "Propose a new memory. It is recorded as a candidate: a human reviewer promotes it to active or rejects it, so it is not in the default search results until then. Search first so as not to propose a duplicate; reinforce an existing memory instead."},
		t.remember)
	mcp.AddTool(srv, &mcp.Tool{Name: "reinforce", Annotations: idem,
		Description: "Say that a memory was confirmed again: its reference count and confidence go up (a candidate reinforced often enough may be promoted automatically)."},
		t.reinforce)
	mcp.AddTool(srv, &mcp.Tool{Name: "update_memory", Annotations: idem,
		Description: "Change a memory's content, type, tags or confidence; only the arguments given change. Pass expected_seq (the seq from get_memory) so as not to overwrite a change you have not seen."},
		t.update)
	mcp.AddTool(srv, &mcp.Tool{Name: "supersede_memory", Annotations: idem,
		Description: "Mark an active memory as replaced by a newer one (superseded_by); it leaves the default results but stays in the history."},
		t.supersede)
	mcp.AddTool(srv, &mcp.Tool{Name: "invalidate_memory", Annotations: idem,
		Description: "Mark a memory as wrong. Nothing is erased: it leaves the default results and its history stays."},
		t.invalidate)
	mcp.AddTool(srv, &mcp.Tool{Name: "set_project_state", Annotations: idem,
		Description: "Set one state entry of a project (category and key), such as its current status or a decision; the previous value stays in the entry's history."},
		t.setState)
}

// memory answers a memory command with the memory after it.
func memory(res ledger.MemoryResult, err error) (*mcp.CallToolResult, any, error) {
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, struct {
		Memory   json.RawMessage `json:"memory"`
		Seq      uint64          `json:"seq"`
		Replayed bool            `json:"replayed,omitempty"`
	}{res.JSON, res.Seq, res.Replayed}, nil
}

// change carries out cmd on memory id for the principal.
func (t tools) change(ctx context.Context, need Role, tool, note, id string, cmd domain.Command, o WriteOptions) (*mcp.CallToolResult, any, error) {
	if err := t.p.need(need, tool); err != nil {
		return nil, nil, err
	}
	if id == "" {
		return nil, nil, toolError(domain.Invalid("id", "is required: the memory's id"))
	}
	return memory(t.s.Ledger.ChangeMemory(ctx, t.p.Caller, note, id, cmd, o.ledger()))
}

func (t tools) remember(ctx context.Context, _ *mcp.CallToolRequest, a RememberArgs) (*mcp.CallToolResult, any, error) {
	if err := t.p.need(RoleWriter, "remember"); err != nil {
		return nil, nil, err
	}
	return memory(t.s.Ledger.CreateMemory(ctx, t.p.Caller, a.Note, domain.CreateMemory{
		MemoryType: a.MemoryType, Content: a.Content, Project: a.Project, Status: string(domain.StatusCandidate),
		Confidence: a.Confidence, DomainTags: a.DomainTags,
	}, ledger.MemoryOptions{IdempotencyKey: a.IdempotencyKey}))
}

func (t tools) reinforce(ctx context.Context, _ *mcp.CallToolRequest, a ReinforceArgs) (*mcp.CallToolResult, any, error) {
	return t.change(ctx, RoleWriter, "reinforce", a.Note, a.ID, domain.ReinforceMemory{Delta: a.Delta}, a.WriteOptions)
}

func (t tools) update(ctx context.Context, _ *mcp.CallToolRequest, a UpdateArgs) (*mcp.CallToolResult, any, error) {
	return t.change(ctx, RoleWriter, "update_memory", a.Note, a.ID, domain.UpdateMemory{
		Content: a.Content, MemoryType: a.MemoryType, DomainTags: a.DomainTags, Confidence: a.Confidence,
	}, a.WriteOptions)
}

func (t tools) supersede(ctx context.Context, _ *mcp.CallToolRequest, a SupersedeArgs) (*mcp.CallToolResult, any, error) {
	if a.SupersededBy == "" {
		return nil, nil, toolError(domain.Invalid("superseded_by", "is required: the id of the memory that replaces this one"))
	}
	return t.change(ctx, RoleWriter, "supersede_memory", a.Reason, a.ID, domain.SupersedeMemory{SupersededBy: a.SupersededBy}, a.WriteOptions)
}

func (t tools) invalidate(ctx context.Context, _ *mcp.CallToolRequest, a InvalidateArgs) (*mcp.CallToolResult, any, error) {
	return t.change(ctx, RoleWriter, "invalidate_memory", a.Reason, a.ID, domain.InvalidateMemory{}, a.WriteOptions)
}

func (t tools) setState(ctx context.Context, _ *mcp.CallToolRequest, a SetStateArgs) (*mcp.CallToolResult, any, error) {
	if err := t.p.need(RoleWriter, "set_project_state"); err != nil {
		return nil, nil, err
	}
	res, err := t.s.Ledger.SetState(ctx, t.p.Caller, a.Note, domain.SetState{Project: a.Project, Category: a.Category, Key: a.Key,
		Value: a.Value, Source: a.Source, Confidence: a.Confidence})
	if err != nil {
		return nil, nil, toolError(err)
	}
	st, err := t.s.DB.ProjectState(res.ID)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, struct {
		Project string `json:"project"`
		Entry   any    `json:"entry"`
		Seq     uint64 `json:"seq"`
	}{res.ID, st[domain.StateKey{Category: a.Category, Key: a.Key}], res.Seq}, nil
}
