package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// nightlyTimeout bounds a nightly run started over HTTP.
const nightlyTimeout = 30 * time.Minute

type nightlyRunRequest struct {
	Night string `json:"night"`
	Step  string `json:"step"`
	Force bool   `json:"force"`
}

func (s *Server) postNightlyRun(w http.ResponseWriter, r *http.Request) {
	var q nightlyRunRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	if q.Night == "" {
		q.Night = s.Now().UTC().Format(time.DateOnly)
	}
	// A client that goes away does not stop the run half-way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), nightlyTimeout)
	defer cancel()
	run, err := s.Nightly.Run(ctx, q.Night, q.Step, q.Force)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func (s *Server) listNightly(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	runs, err := s.DB.NightlyRuns(limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]json.RawMessage{"runs": runs})
}
