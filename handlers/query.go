package handlers

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/memledger/memledger/domain"
)

// routeParams is the query parameters the route with pattern p takes: its own, and min_seq on
// every read (see gateRead).
func routeParams(p string) []string {
	params := slices.Clone(routes[p].query)
	if isRead(p) {
		params = append(params, ParamMinSeq)
	}
	return params
}

// checkRouteQuery refuses a query parameter the route with pattern p does not take, naming it
// and those the route takes.
func checkRouteQuery(p string, q url.Values) error {
	if routes[p].uncheckedQuery {
		return nil
	}
	allowed := routeParams(p)
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
