package app

import (
	"net/http"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/auth"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/handlers/mcpserver"
)

// MCPActor is the actor of changes made over /mcp by a session that names none while the
// service does not authenticate (--auth off).
const MCPActor = "mcp-http"

// mcpPrincipal returns whom an MCP session over HTTP acts for. With authentication (a is not
// nil) it is the request's bearer token, as on every route: its name the principal and the
// actor (or the X-Actor it names with the on-behalf right), its role the role of the
// session's tools, so that a writer's token has no promote or reject over MCP either. With
// --auth off it is the actor the opening request names in X-Actor (MCPActor when none), with
// every role, as the HTTP API's requests are then.
func mcpPrincipal(a *auth.Authenticator) mcpserver.Authenticator {
	return func(r *http.Request) (mcpserver.Principal, error) {
		if a == nil {
			actor := r.Header.Get("X-Actor")
			if actor == "" {
				actor = MCPActor
			}
			return mcpserver.Principal{Caller: ledger.Caller{Actor: actor, Role: domain.RoleAdmin}, Role: mcpserver.RoleAdmin}, nil
		}
		c, err := a.Authenticate(r)
		if err != nil {
			return mcpserver.Principal{}, err
		}
		return mcpserver.Principal{Caller: c, Role: mcpserver.Role(c.Role)}, nil
	}
}
