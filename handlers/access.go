package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/memledger/memledger/handlers/auth"
)

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
	case errors.Is(err, auth.ErrUnauthenticated) && signInFirst(r):
		http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
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

// signInFirst reports whether an unauthenticated request is a person opening a page without a
// session (no Authorization header, no usable cookie): it is sent to the sign-in page rather
// than shown a 401 problem. API clients, and anything that sent a token, still get the 401.
func signInFirst(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.HasPrefix(r.URL.Path, "/ui/") && r.Header.Get("Authorization") == ""
}
