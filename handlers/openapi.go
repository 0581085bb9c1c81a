package handlers

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3.1 description of the HTTP API, served at GET /openapi.json. The
// end-to-end tests validate every request they send and every answer they get against it, and
// fail on a route it does not describe.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(OpenAPI)
}
