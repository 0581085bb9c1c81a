package handlers

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
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
	// The body is read: a long replay must not be cut by the server's read timeout.
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	if !wantsNDJSON(r) {
		rep, err := jobs.Shadow(r.Context(), s.Store, p, o)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
		return
	}
	s.streamShadow(w, r, p, o)
}

// shadowLine is one line of a streamed shadow replay: its progress, then its report, or the
// error that ended it once progress was sent.
type shadowLine struct {
	Progress *shadowProgress    `json:"progress,omitempty"`
	Report   *jobs.ShadowReport `json:"report,omitempty"`
	Error    *problem           `json:"error,omitempty"`
}

// shadowProgress is how far a replay has read: the log position Seq of Last.
type shadowProgress struct {
	Seq  uint64 `json:"seq"`
	Last uint64 `json:"last"`
}

// streamShadow answers a shadow replay as NDJSON: a progress line as the replay reads the log
// (every 1,000 events, the first at 0 once the policy is accepted), then one line with the
// report. A request refused before the replay starts is a problem as usual; an error after
// the first line is its last line.
func (s *Server) streamShadow(w http.ResponseWriter, r *http.Request, p jobs.Policy, o jobs.ShadowOptions) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams(), cancel)()
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started, broken := false, false
	send := func(l shadowLine) {
		if broken {
			return
		}
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
		if enc.Encode(l) != nil || rc.Flush() != nil {
			broken = true
			cancel() // the client went away: stop replaying
		}
	}
	o.Progress = func(seq, last uint64) { send(shadowLine{Progress: &shadowProgress{Seq: seq, Last: last}}) }
	rep, err := jobs.Shadow(ctx, s.Store, p, o)
	switch {
	case err == nil:
		send(shadowLine{Report: &rep})
	case !started:
		s.fail(w, r, err)
	case broken || r.Context().Err() != nil:
		// The client went away: nothing is left to answer, and nothing failed.
		s.Logger.Info("shadow replay stopped: the client went away", "path", r.URL.Path)
	case s.streams().Err() != nil:
		send(shadowLine{Error: &problem{Type: "about:blank", Title: http.StatusText(http.StatusServiceUnavailable),
			Status: http.StatusServiceUnavailable, Detail: "the server is shutting down; run the replay again",
			Instance: r.URL.Path}})
	default:
		status := statusOf(err)
		detail := err.Error()
		if status == http.StatusInternalServerError {
			s.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			detail = "internal error; see the server log"
		}
		send(shadowLine{Error: &problem{Type: "about:blank", Title: http.StatusText(status), Status: status,
			Detail: detail, Instance: r.URL.Path}})
	}
}

// wantsNDJSON reports whether r asks for a streamed answer (Accept: application/x-ndjson).
func wantsNDJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/x-ndjson" {
				return true
			}
		}
	}
	return false
}
