package handlers

import (
	"net/http"

	"github.com/memledger/memledger/handlers/jobs"
	"github.com/memledger/memledger/handlers/ledger"
)

func (s *Server) getIntegrity(w http.ResponseWriter, r *http.Request) {
	report, err := s.DB.IntegrityReport()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, report)
}

// IntegrityRun is a recorded integrity run (see ledger.IntegrityRun).
type IntegrityRun = ledger.IntegrityRun

func (s *Server) postIntegrityRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.Ledger.RunIntegrity(r.Context(), caller(r, jobs.ActorIntegrity))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
