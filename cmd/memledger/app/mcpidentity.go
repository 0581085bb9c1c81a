package app

import (
	"net/http"

	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/handlers/mcpserver"
)

// MCPActor is the actor of changes made over /mcp by a session that names none.
const MCPActor = "mcp-http"

// mcpPrincipal is whom an MCP session over HTTP acts for: the actor its opening request names
// in X-Actor (MCPActor when none), with every role, as the HTTP API's requests do while the
// service does not authenticate.
func mcpPrincipal(r *http.Request) (mcpserver.Principal, error) {
	actor := r.Header.Get("X-Actor")
	if actor == "" {
		actor = MCPActor
	}
	return mcpserver.Principal{Caller: ledger.Caller{Actor: actor}, Role: mcpserver.RoleAdmin}, nil
}
