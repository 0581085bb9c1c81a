package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/handlers/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MCPStdioActor is the actor of changes made by memledger mcp while the service does not
// authenticate.
const MCPStdioActor = "mcp-stdio"

// mcpStdio serves the MCP tools over stdin and stdout. When a service answers at --addr it
// passes everything on to that service's /mcp; when none does, it opens the data directory
// itself. Either way it says which on stderr, and logs only there.
func mcpStdio(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("memledger mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.flags(fs, true)
	token := fs.String("token", env("MEMLEDGER_TOKEN", ""), "bearer token the tools act with (MEMLEDGER_TOKEN; default <data>/admin.token)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "memledger mcp: unexpected arguments %q\n", fs.Args())
		return exitError(2)
	}
	if *token == "" {
		if data, err := os.ReadFile(filepath.Join(cfg.Data, "admin.token")); err == nil {
			*token = strings.TrimSpace(string(data))
		}
	}
	transport := &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{stdout}}
	base := baseURL(cfg.Addr)
	if serviceAnswers(ctx, base) {
		fmt.Fprintf(stderr, "memledger mcp: talking to the running service at %s\n", base)
		client := &http.Client{Transport: bearer{token: *token, actor: MCPStdioActor}}
		return mcpserver.Bridge(ctx, base+mcpserver.Path, client, transport)
	}
	fmt.Fprintf(stderr, "memledger mcp: no service answers at %s; opening the data directory %s itself\n", base, cfg.Data)
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	cfg.Addr = "127.0.0.1:0"
	m := NewMain(cfg, logger)
	if err := m.Open(ctx); err != nil {
		return err
	}
	p := mcpserver.Principal{Caller: ledger.Caller{Actor: MCPStdioActor, Role: domain.RoleAdmin}, Role: mcpserver.RoleAdmin}
	err = m.MCP.NewServer(p).Run(ctx, transport)
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		err = nil
	}
	return errors.Join(err, m.Close())
}

// serviceAnswers reports whether a memledger service answers /health at base.
func serviceAnswers(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return false
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return true
}

// bearer adds the token to every request: the service then acts as its principal. Without a
// token (a service run with --auth off) it names the actor instead.
type bearer struct{ token, actor string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	} else {
		r.Header.Set("X-Actor", b.actor)
	}
	return http.DefaultTransport.RoundTrip(r)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
