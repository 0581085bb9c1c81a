package mcpserver

import (
	"context"
	"fmt"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Bridge serves over t the tools and resources of the memledger service whose streamable
// HTTP transport is at endpoint, calling it with client (which carries the bearer token): each
// tool call, resource read and subscription is passed on, and the service's resource updates
// come back. It returns when t's session ends or the service's does.
func Bridge(ctx context.Context, endpoint string, client *http.Client, t mcp.Transport) error {
	var local *mcp.Server
	remote := mcp.NewClient(&mcp.Implementation{Name: Name + "-stdio", Version: "bridge"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(ctx context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			local.ResourceUpdated(ctx, req.Params)
		},
	})
	cs, err := remote.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: client}, nil)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	defer cs.Close()
	init := cs.InitializeResult()
	local = mcp.NewServer(init.ServerInfo, &mcp.ServerOptions{
		Instructions: init.Instructions,
		SubscribeHandler: func(ctx context.Context, req *mcp.SubscribeRequest) error {
			return cs.Subscribe(ctx, &mcp.SubscribeParams{URI: req.Params.URI})
		},
		UnsubscribeHandler: func(ctx context.Context, req *mcp.UnsubscribeRequest) error {
			return cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: req.Params.URI})
		},
		Capabilities: &mcp.ServerCapabilities{},
	})
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return fmt.Errorf("list the tools of %s: %w", endpoint, err)
		}
		local.AddTool(tool, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return cs.CallTool(ctx, &mcp.CallToolParams{Name: req.Params.Name, Arguments: req.Params.Arguments})
		})
	}
	read := func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: req.Params.URI})
	}
	for r, err := range cs.Resources(ctx, nil) {
		if err != nil {
			return fmt.Errorf("list the resources of %s: %w", endpoint, err)
		}
		local.AddResource(r, read)
	}
	for rt, err := range cs.ResourceTemplates(ctx, nil) {
		if err != nil {
			return fmt.Errorf("list the resource templates of %s: %w", endpoint, err)
		}
		local.AddResourceTemplate(rt, read)
	}
	ss, err := local.Connect(ctx, t, nil)
	if err != nil {
		return err
	}
	done := make(chan error, 2)
	go func() { done <- ss.Wait() }()
	go func() { done <- cs.Wait() }()
	err = <-done
	ss.Close()
	return err
}
