package handlers

import (
	"net/http"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/jobs"
)

// shadowRequest is the body of POST /admin/shadow: the policy (a threshold not given is the
// live one) and the window of the nightly runs decided again.
type shadowRequest struct {
	AutoPromoteRefs       *int     `json:"auto_promote_refs"`
	AutoPromoteConfidence *float64 `json:"auto_promote_confidence"`
	CandidateMaxAgeDays   *float64 `json:"candidate_max_age_days"`
	MinPassRate           *float64 `json:"min_pass_rate"`
	MaxCandidates         *int     `json:"max_candidates"`
	Since                 string   `json:"since"`
	Until                 string   `json:"until"`
}

// postShadow replays the history under another policy and answers the difference; it writes
// nothing.
func (s *Server) postShadow(w http.ResponseWriter, r *http.Request) {
	var q shadowRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	p := jobs.Policy{Rules: s.Jobs, Pipeline: s.Pipeline}
	if q.AutoPromoteRefs != nil {
		p.Rules.AutoPromoteRefs = *q.AutoPromoteRefs
	}
	if q.AutoPromoteConfidence != nil {
		p.Rules.AutoPromoteConfidence = *q.AutoPromoteConfidence
	}
	if q.CandidateMaxAgeDays != nil {
		p.Rules.CandidateMaxAge = time.Duration(*q.CandidateMaxAgeDays * float64(24*time.Hour))
	}
	if q.MinPassRate != nil {
		p.Pipeline.MinPassRate = *q.MinPassRate
	}
	if q.MaxCandidates != nil {
		p.Pipeline.MaxCandidates = *q.MaxCandidates
	}
	var o jobs.ShadowOptions
	for _, t := range []struct {
		field, v string
		dst      *time.Time
	}{{"since", q.Since, &o.Since}, {"until", q.Until, &o.Until}} {
		if t.v == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, t.v)
		if err != nil {
			s.fail(w, r, domain.Invalid(t.field, "%q is not an RFC 3339 time (like 2026-11-30T00:00:00Z)", t.v))
			return
		}
		*t.dst = at
	}
	if !o.Since.IsZero() && !o.Until.IsZero() && !o.Since.Before(o.Until) {
		s.fail(w, r, domain.Invalid("until", "%s is not after since %s: the window is empty", q.Until, q.Since))
		return
	}
	rep, err := jobs.Shadow(r.Context(), s.Store, p, o)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
