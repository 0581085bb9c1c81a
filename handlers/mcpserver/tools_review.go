package mcpserver

import (
	"context"

	"github.com/memledger/memledger/domain"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// DecisionArgs are the arguments of promote and reject.
type DecisionArgs struct {
	ID   string `json:"id" jsonschema:"the candidate's id"`
	Note string `json:"note,omitempty" jsonschema:"why, for the record"`
	WriteOptions
}

// QueueArgs are the arguments of review_queue.
type QueueArgs struct {
	Project string `json:"project,omitempty" jsonschema:"only candidates of this project"`
	Limit   int    `json:"limit,omitempty" jsonschema:"most candidates returned, 1 to 200 (default 20)"`
	Cursor  string `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page"`
	ReadOptions
}

func (t tools) addReview(srv *mcp.Server) {
	mcp.AddTool(srv, &mcp.Tool{Name: "review_queue", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
		Description: "The candidates waiting for a reviewer's decision, newest first."},
		t.queue)
	mcp.AddTool(srv, &mcp.Tool{Name: "promote", Annotations: &mcp.ToolAnnotations{IdempotentHint: true},
		Description: "Accept a candidate: it becomes active and appears in searches. A reviewer's decision, recorded under your name."},
		t.promote)
	mcp.AddTool(srv, &mcp.Tool{Name: "reject", Annotations: &mcp.ToolAnnotations{IdempotentHint: true},
		Description: "Refuse a candidate: it becomes invalid. A reviewer's decision, recorded under your name."},
		t.reject)
}

func (t tools) queue(ctx context.Context, _ *mcp.CallToolRequest, a QueueArgs) (*mcp.CallToolResult, any, error) {
	if err := t.p.need(RoleReviewer, "review_queue"); err != nil {
		return nil, nil, err
	}
	f, err := t.listFilter(ListArgs{Status: string(domain.StatusCandidate), Project: a.Project, Limit: a.Limit, Cursor: a.Cursor})
	if err != nil {
		return nil, nil, toolError(err)
	}
	return t.list(ctx, f, a.ReadOptions)
}

func (t tools) promote(ctx context.Context, _ *mcp.CallToolRequest, a DecisionArgs) (*mcp.CallToolResult, any, error) {
	return t.change(ctx, RoleReviewer, "promote", a.Note, a.ID, domain.PromoteMemory{}, a.WriteOptions)
}

func (t tools) reject(ctx context.Context, _ *mcp.CallToolRequest, a DecisionArgs) (*mcp.CallToolResult, any, error) {
	return t.change(ctx, RoleReviewer, "reject", a.Note, a.ID, domain.RejectMemory{}, a.WriteOptions)
}
