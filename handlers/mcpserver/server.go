// Package mcpserver serves memledger to assistants over the Model Context Protocol: tools to
// search, read and write memories and project state, and resources for a memory and the review
// queue, with update notifications. It writes only through the command layer (package ledger)
// and reads only from the projections and the search index; the same tools are served over
// stdio (memledger mcp) and over the streamable HTTP transport (/mcp).
package mcpserver

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Name is the server's name in the MCP handshake.
const Name = "memledger"

// Role is what a principal may do: read, write (propose and change memories), review
// (promote and reject candidates) or administer.
type Role string

// The roles, each allowed what the one before it is.
const (
	RoleReader   Role = "reader"
	RoleWriter   Role = "writer"
	RoleReviewer Role = "reviewer"
	RoleAdmin    Role = "admin"
)

// rank orders the roles; an unknown role ranks below a reader.
func (r Role) rank() int {
	switch r {
	case RoleReader:
		return 1
	case RoleWriter:
		return 2
	case RoleReviewer:
		return 3
	case RoleAdmin:
		return 4
	}
	return 0
}

// Allows reports whether r may do what role need allows.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() }

// Principal is who an MCP session acts for: the caller the command layer records on every
// change (its actor is the principal's name) and the role that decides which tools it has.
// It is the one place where identity enters the MCP server.
type Principal struct {
	Caller ledger.Caller
	Role   Role
}

// Service holds what the MCP tools read and write through. Set its fields, then call
// NewServer for a principal (stdio) or Handler (HTTP), and Run to send resource updates.
type Service struct {
	Ledger *ledger.Ledger
	DB     *projections.DB
	Search *projections.Search
	// Store is followed by Run to learn which memories change.
	Store  *eventstore.Store
	Runner *projections.Runner
	Rules  domain.Rules
	// Now is the clock searches judge validity at (time.Now when nil).
	Now func() time.Time
	// ReadWait bounds how long a read tool waits for the projections to reach the position
	// it must reflect (DefaultReadWait when 0).
	ReadWait time.Duration
	Version  string
	Logger   *slog.Logger

	schemas *mcp.SchemaCache
	once    sync.Once
	mu      sync.Mutex
	servers map[*mcp.Server]struct{}
	// wake hands Run the log position to follow from when a first session begins.
	wake chan uint64
}

func (s *Service) init() {
	s.once.Do(func() {
		s.schemas = mcp.NewSchemaCache()
		s.servers = map[*mcp.Server]struct{}{}
		s.wake = make(chan uint64, 1)
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
	})
}

// instructions tell a model what the server is for and how its writes work.
const instructions = `memledger is a reviewed, audited memory. Search before you write (search_memories), read one memory with get_memory, and see who changed what with memory_history.
remember proposes a new memory as a candidate: a human reviewer promotes or rejects it, so say in the note why it is worth keeping. Every write takes an optional idempotency_key (reuse the same key when you retry a call whose answer you did not get: it then writes once) and an optional expected_seq (the seq you last read: the write is refused if the memory changed since, so read it again and decide again).
Every change is recorded under your identity.`

// NewServer returns an MCP server acting for p: its tools are those p's role allows, and
// every change it makes is recorded under p.Caller.
func (s *Service) NewServer(p Principal) *mcp.Server {
	s.init()
	var srv *mcp.Server
	srv = mcp.NewServer(&mcp.Implementation{Name: Name, Title: "memledger memory ledger", Version: s.Version}, &mcp.ServerOptions{
		Instructions:       instructions,
		InitializedHandler: func(_ context.Context, req *mcp.InitializedRequest) { s.track(srv, req.Session) },
		SchemaCache:        s.schemas,
		SubscribeHandler:   s.subscribe,
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
		Capabilities:       &mcp.ServerCapabilities{},
	})
	t := tools{s: s, p: p}
	t.addRead(srv)
	if p.Role.Allows(RoleWriter) {
		t.addWrite(srv)
	}
	if p.Role.Allows(RoleReviewer) {
		t.addReview(srv)
	}
	s.addResources(srv, p)
	return srv
}

// track keeps srv among the servers resource updates go to until ss ends. The first of them
// wakes Run with the log's end before it counts as live: every event after it is followed.
func (s *Service) track(srv *mcp.Server, ss *mcp.ServerSession) {
	var from uint64
	if !s.serving() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last, err := s.Store.LastSeq(ctx)
		cancel()
		if err != nil {
			s.Logger.Warn("mcp: reading the log's end for resource updates failed; following from the projections' position", "err", err)
			last = s.Runner.Applied()
		}
		from = last + 1
	}
	s.mu.Lock()
	first := len(s.servers) == 0
	s.servers[srv] = struct{}{}
	s.mu.Unlock()
	if first && from == 0 {
		// The sessions live when it looked all ended since.
		from = s.Runner.Applied() + 1
	}
	if first {
		select {
		case <-s.wake: // an older session's, not taken yet
		default:
		}
		select {
		case s.wake <- from:
		default:
		}
	}
	go func() {
		ss.Wait()
		s.mu.Lock()
		delete(s.servers, srv)
		s.mu.Unlock()
	}()
}

// tools are the tool handlers of one principal.
type tools struct {
	s *Service
	p Principal
}
