package handlers

import (
	"net/http"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

// ActorAdmin is the actor of an admin's request that names none.
const ActorAdmin = "admin"

// revertRequest is the body of POST /admin/revert: the filter, whether to write, and why.
type revertRequest struct {
	ledger.RevertFilter
	// Since and Until are parsed here, so that a bad time names its field.
	Since string `json:"since"`
	Until string `json:"until"`
	// DryRun defaults to true: a revert writes only when asked to.
	DryRun           *bool  `json:"dry_run"`
	IncludeConflicts bool   `json:"include_conflicts"`
	Note             string `json:"note"`
}

// postRevert answers the plan of a revert by filter, and writes it when dry_run is false.
func (s *Server) postRevert(w http.ResponseWriter, r *http.Request) {
	var q revertRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	for _, t := range []struct {
		field, v string
		dst      **time.Time
	}{{"since", q.Since, &q.RevertFilter.Since}, {"until", q.Until, &q.RevertFilter.Until}} {
		if t.v == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, t.v)
		if err != nil {
			s.fail(w, r, domain.Invalid(t.field, "%q is not an RFC 3339 time (like 2026-11-30T00:00:00Z)", t.v))
			return
		}
		*t.dst = &at
	}
	c, err := plainCaller(r, ActorAdmin)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o := ledger.RevertOptions{Apply: q.DryRun != nil && !*q.DryRun, IncludeConflicts: q.IncludeConflicts}
	plan, err := s.Ledger.Revert(r.Context(), c, q.Note, q.RevertFilter, o)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, plan)
}
