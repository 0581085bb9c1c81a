package handlers

import (
	"slices"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/feed"
)

// route is what THE route table says of one route: who may use it and which query parameters
// it takes.
type route struct {
	// public routes are open to anyone (the health summary, whose details need a reader; the
	// sign-in page; the pages' assets; the API's OpenAPI description).
	public bool
	// role is the role the route needs (a role allows everything the roles before it allow);
	// when empty, a GET route needs a reader and any other route an admin, so that a route
	// added later is closed until it is given a role.
	role domain.Role
	// query is the query parameters the route takes; any other is refused before the route's
	// handler runs (checkRouteQuery), the same way on every route.
	query []string
	// uncheckedQuery leaves the query to the route: the Model Context Protocol's transport
	// follows its own specification.
	uncheckedQuery bool
	// stream routes answer for long: their request is held (auth.Hold), so that the answer
	// ends once its token is revoked or expires, or its session ends.
	stream bool
}

// The query parameters of the routes that read lists.
var (
	memoryListQuery = []string{"status", "memory_type", "project", "limit", "cursor", "as_of"}
	searchQuery     = []string{"q", "status", "memory_type", "project", "domain_tags", "include_expired", "limit", "cursor", "after_seq"}
)

// routes is THE route table, by ServeMux pattern: a route not named here is a GET needing a
// reader, or another method needing an admin, and takes no query parameter. handlers/openapi.json
// describes the same roles and parameters (TestOpenAPIDocument, TestRouteRoleTable).
var routes = map[string]route{
	"GET /health":           {public: true},
	"GET /openapi.json":     {public: true},
	"GET /{$}":              {public: true},
	"GET /ui/signin":        {public: true},
	"POST /ui/signin":       {public: true},
	"POST /ui/signout":      {public: true},
	"GET /ui/static/{file}": {public: true},

	"POST /memory":                 {role: domain.RoleWriter},
	"GET /memory":                  {query: memoryListQuery},
	"GET /memory/search":           {role: domain.RoleReader, query: searchQuery},
	"GET /memory/{id}":             {query: []string{"as_of"}},
	"GET /memory/{id}/audit":       {query: []string{"as_of"}},
	"PUT /memory/{id}":             {role: domain.RoleWriter},
	"DELETE /memory/{id}":          {role: domain.RoleWriter},
	"POST /memory/{id}/invalidate": {role: domain.RoleWriter},
	"POST /memory/{id}/supersede":  {role: domain.RoleWriter},
	"POST /memory/{id}/reinforce":  {role: domain.RoleWriter},
	"POST /memory/{id}/promote":    {role: domain.RoleReviewer},
	"POST /memory/{id}/reject":     {role: domain.RoleReviewer},

	"POST /projects":           {role: domain.RoleWriter},
	"PUT /projects/{id}":       {role: domain.RoleWriter},
	"POST /project/state":      {role: domain.RoleWriter},
	"GET /project/state":       {query: []string{"project", "category", "include_invalid", "as_of"}},
	"DELETE /project/state":    {role: domain.RoleWriter, query: []string{"project", "category", "key", "note"}},
	"GET /project/state/audit": {query: []string{"project", "category", "key"}},

	"POST /documents":             {role: domain.RoleWriter},
	"DELETE /documents/{id}":      {role: domain.RoleWriter, query: []string{"note"}},
	"POST /documents/{id}/chunks": {role: domain.RoleWriter},

	"GET /events": {role: domain.RoleReader, query: feed.QueryParams, stream: true},

	"GET /admin/audit/recent":               {query: []string{"action", "actor", "since", "limit"}},
	"GET /admin/alerts":                     {query: []string{"severity", "limit"}},
	"GET /admin/alerts/watch":               {query: []string{"severity", "since"}, stream: true},
	"POST /admin/alerts/redeliver":          {role: domain.RoleAdmin},
	"GET /admin/nightly":                    {query: []string{"limit"}},
	"POST /admin/subscriptions":             {role: domain.RoleAdmin},
	"GET /admin/subscriptions":              {role: domain.RoleAdmin, query: []string{"include_removed"}},
	"GET /admin/subscriptions/{id}":         {role: domain.RoleAdmin},
	"DELETE /admin/subscriptions/{id}":      {role: domain.RoleAdmin},
	"POST /admin/subscriptions/{id}/pause":  {role: domain.RoleAdmin},
	"POST /admin/subscriptions/{id}/resume": {role: domain.RoleAdmin},
	"POST /admin/subscriptions/{id}/reset":  {role: domain.RoleAdmin},
	"GET /admin/tokens":                     {role: domain.RoleAdmin},
	"DELETE /admin/tokens/{name}":           {query: []string{"note"}},
	"POST /admin/revert":                    {role: domain.RoleAdmin},
	"POST /admin/shadow":                    {role: domain.RoleAdmin},

	"GET /ui/{$}":         {query: pageQuery()},
	"GET /ui/memory/{id}": {query: pageQuery("at")},
	"GET /ui/review":      {query: pageQuery("project", "memory_type", "q")},
	"GET /ui/search":      {query: pageQuery(searchQuery...)},
	// Revert and shadow replay are an admin's, the revert page's plan too.
	"GET /ui/revert":       {role: domain.RoleAdmin, query: pageQuery(revertPageQuery...)},
	"POST /ui/revert":      {role: domain.RoleAdmin},
	"POST /ui/review/{id}": {role: domain.RoleReviewer},

	// The MCP endpoint acts as the token's principal with its role: a reader's session has the
	// read tools, a writer's the writes too, a reviewer's promote and reject (mcpserver).
	"/mcp": {role: domain.RoleReader, uncheckedQuery: true, stream: true},
}

// pageQuery is the query parameters of a web page: its own, and flash, what the review form's
// redirect says was done (every page shows it, when it is one; see flashOf).
func pageQuery(own ...string) []string { return append(slices.Clip(own), "flash") }

// RouteRole is the role route pattern p needs, and whether it is public.
func RouteRole(p string) (domain.Role, bool) {
	r := routes[p]
	switch {
	case r.public:
		return "", true
	case r.role != "":
		return r.role, false
	case strings.HasPrefix(p, "GET "):
		return domain.RoleReader, false
	}
	return domain.RoleAdmin, false
}

// QueryParams returns the query parameters the route with ServeMux pattern p takes (nil for
// none), and whether they are checked at all.
func QueryParams(p string) ([]string, bool) {
	r := routes[p]
	return routeParams(p), !r.uncheckedQuery
}
