package mcpserver

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Path is where the service serves the streamable HTTP transport.
const Path = "/mcp"

// Authenticator gives the principal an HTTP request acts for, or an error when its bearer
// token is missing or unknown.
type Authenticator func(r *http.Request) (Principal, error)

// principalKey holds a request's principal in the token information the SDK keeps.
const principalKey = "memledger.principal"

// Handler serves the streamable HTTP transport; authn says whom each session acts for, from
// the request that opens it. With bearer set, every request must carry a bearer token authn
// accepts (401 otherwise), a session belongs to the principal that opened it (another token
// is refused on it) and the session's tools are the principal's role's.
func (s *Service) Handler(authn Authenticator, bearer bool) http.Handler {
	s.init()
	h := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
			if p, ok := ti.Extra[principalKey].(Principal); ok {
				return s.NewServer(p)
			}
		}
		p, err := authn(r)
		if err != nil {
			return nil
		}
		return s.NewServer(p)
	}, &mcp.StreamableHTTPOptions{Logger: s.Logger, SessionTimeout: 30 * time.Minute})
	if !bearer {
		return h
	}
	verify := func(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		p, err := authn(r)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
		}
		// UserID binds a session to its principal: the SDK refuses another one on it.
		return &auth.TokenInfo{UserID: p.Caller.Principal + "/" + p.Caller.Actor, Expiration: time.Now().Add(time.Hour),
			Extra: map[string]any{principalKey: p}}, nil
	}
	return auth.RequireBearerToken(verify, nil)(h)
}
