package handlers

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/feed"
)

// The query parameters of the routes that read lists.
var (
	memoryListQuery = []string{"status", "memory_type", "project", "limit", "cursor", "as_of"}
	searchQuery     = []string{"q", "status", "memory_type", "project", "domain_tags", "include_expired", "limit", "cursor", "after_seq"}
)

// routeQuery is the query parameters each route takes, by its ServeMux pattern; a route not
// named takes none. Handler checks every request against it (checkRouteQuery) before the
// route's handler runs, so that an unknown parameter is refused the same way everywhere,
// never ignored; handlers/openapi.json describes the same parameters (TestOpenAPIDocument).
var routeQuery = map[string][]string{
	"GET /memory":                 memoryListQuery,
	"GET /memory/search":          searchQuery,
	"GET /memory/{id}":            {"as_of"},
	"GET /memory/{id}/audit":      {"as_of"},
	"GET /admin/audit/recent":     {"action", "actor", "since", "limit"},
	"GET /admin/alerts":           {"severity", "limit"},
	"GET /admin/alerts/watch":     {"severity", "since"},
	"GET /admin/nightly":          {"limit"},
	"GET /admin/subscriptions":    {"include_removed"},
	"GET /project/state":          {"project", "category", "include_invalid", "as_of"},
	"DELETE /project/state":       {"project", "category", "key", "note"},
	"GET /project/state/audit":    {"project", "category", "key"},
	"DELETE /documents/{id}":      {"note"},
	"DELETE /admin/tokens/{name}": {"note"},
	"GET /events":                 feed.QueryParams,
	"GET /ui/{$}":                 pageQuery(),
	"GET /ui/memory/{id}":         pageQuery("at"),
	"GET /ui/review":              pageQuery("project", "memory_type", "q"),
	"GET /ui/search":              pageQuery(searchQuery...),
}

// pageQuery is the query parameters of a web page: its own, and flash, what the review form's
// redirect says was done (every page shows it, when it is one; see flashOf).
func pageQuery(own ...string) []string { return append(slices.Clip(own), "flash") }

// uncheckedQuery are the routes whose query is not the API's: the Model Context Protocol's
// transport follows its own specification.
var uncheckedQuery = map[string]bool{"/mcp": true}

// QueryParams returns the query parameters the route with ServeMux pattern p takes (nil for
// none), and whether they are checked at all.
func QueryParams(p string) ([]string, bool) {
	return slices.Clone(routeQuery[p]), !uncheckedQuery[p]
}

// checkRouteQuery refuses a query parameter the route with pattern p does not take, naming it
// and those the route takes.
func checkRouteQuery(p string, q url.Values) error {
	if uncheckedQuery[p] {
		return nil
	}
	allowed := routeQuery[p]
	keys := make([]string, 0, len(q))
	for k := range q {
		if !slices.Contains(allowed, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys) // the same answer for the same request
	switch len(allowed) {
	case 0:
		return domain.Invalid(keys[0], "unknown query parameter; %s takes none", p)
	case 1:
		return domain.Invalid(keys[0], "unknown query parameter; %s takes only %s", p, allowed[0])
	}
	list := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	return domain.Invalid(keys[0], "unknown query parameter; %s takes %s", p, list)
}

// refuseQuery answers a request whose query the route does not take: a problem, or the error
// page on the web pages.
func (s *Server) refuseQuery(w http.ResponseWriter, r *http.Request, pattern string, err error) {
	if _, path, _ := strings.Cut(pattern, " "); strings.HasPrefix(path, "/ui/") {
		s.uiFail(w, r, err)
		return
	}
	s.fail(w, r, err)
}
