package handlers

import (
	"errors"
	"net/http"

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
