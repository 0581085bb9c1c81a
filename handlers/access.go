package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/auth"
)

// public are the routes anyone may use: the health summary (its details need a reader), the
// sign-in page, the pages' assets and the API's OpenAPI description (the repository's file).
var public = map[string]bool{
	"GET /health":           true,
	"GET /openapi.json":     true,
	"GET /{$}":              true,
	"GET /ui/signin":        true,
	"POST /ui/signin":       true,
	"POST /ui/signout":      true,
	"GET /ui/static/{file}": true,
}

// routeRoles is THE table of who may use which route: the role each needs (a role allows
// everything the roles before it allow). A GET route not named here needs a reader, any other
// route an admin, so that a route added later is closed until it is given a role.
var routeRoles = map[string]domain.Role{
	"POST /memory":                          domain.RoleWriter,
	"PUT /memory/{id}":                      domain.RoleWriter,
	"DELETE /memory/{id}":                   domain.RoleWriter,
	"POST /memory/{id}/invalidate":          domain.RoleWriter,
	"POST /memory/{id}/supersede":           domain.RoleWriter,
	"POST /memory/{id}/reinforce":           domain.RoleWriter,
	"POST /memory/{id}/promote":             domain.RoleReviewer,
	"POST /memory/{id}/reject":              domain.RoleReviewer,
	"POST /ui/review/{id}":                  domain.RoleReviewer,
	"POST /projects":                        domain.RoleWriter,
	"PUT /projects/{id}":                    domain.RoleWriter,
	"POST /project/state":                   domain.RoleWriter,
	"DELETE /project/state":                 domain.RoleWriter,
	"POST /documents":                       domain.RoleWriter,
	"DELETE /documents/{id}":                domain.RoleWriter,
	"POST /documents/{id}/chunks":           domain.RoleWriter,
	"GET /memory/search":                    domain.RoleReader,
	"GET /events":                           domain.RoleReader,
	"POST /admin/alerts/redeliver":          domain.RoleAdmin,
	"POST /admin/subscriptions":             domain.RoleAdmin,
	"GET /admin/subscriptions":              domain.RoleAdmin,
	"GET /admin/subscriptions/{id}":         domain.RoleAdmin,
	"DELETE /admin/subscriptions/{id}":      domain.RoleAdmin,
	"POST /admin/subscriptions/{id}/pause":  domain.RoleAdmin,
	"POST /admin/subscriptions/{id}/resume": domain.RoleAdmin,
	"POST /admin/subscriptions/{id}/reset":  domain.RoleAdmin,
	"GET /admin/tokens":                     domain.RoleAdmin,
	// The MCP endpoint's tools act with every role until they are bound to the token's.
	"/mcp": domain.RoleAdmin,
}

// RouteRole is the role route pattern p needs, and whether it is public.
func RouteRole(p string) (domain.Role, bool) {
	if public[p] {
		return "", true
	}
	if r, ok := routeRoles[p]; ok {
		return r, false
	}
	if strings.HasPrefix(p, "GET ") {
		return domain.RoleReader, false
	}
	return domain.RoleAdmin, false
}

// authorize authenticates r and checks its role for the route pattern; it returns the request
// carrying the caller, or answers 401 or 403 and returns nil. Without an Authenticator
// (--auth off) every request passes as before.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, pattern string) *http.Request {
	if s.Auth == nil {
		return r
	}
	need, open := RouteRole(pattern)
	c, err := s.Auth.Authenticate(r)
	if err == nil && !open {
		err = auth.Require(c, need)
	}
	switch {
	case err == nil:
		return r.WithContext(auth.WithCaller(r.Context(), c))
	case open:
		// A public route answers the anonymous (health then says less).
		return r
	case errors.Is(err, auth.ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="memledger"`)
		s.problem(w, r, http.StatusUnauthorized, err.Error(), "")
	case errors.Is(err, auth.ErrForbidden):
		s.problem(w, r, http.StatusForbidden, err.Error(), "")
	default:
		s.fail(w, r, err)
	}
	return nil
}
