package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/auth"
	"github.com/memledger/memledger/handlers/jobs"
	"github.com/memledger/memledger/handlers/sinks"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/memledger/memledger/projections"
)

type autoPromoteRequest struct {
	MinReferenceCount *int     `json:"min_reference_count"`
	MinConfidence     *float64 `json:"min_confidence"`
	Note              string   `json:"note"`
}

type expireRequest struct {
	MaxAgeDays *float64 `json:"max_age_days"`
	Note       string   `json:"note"`
}

func (s *Server) autoPromote(w http.ResponseWriter, r *http.Request) {
	var q autoPromoteRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	cmd := domain.AutoPromoteMemory{MinReferenceCount: s.Jobs.AutoPromoteRefs, MinConfidence: s.Jobs.AutoPromoteConfidence}
	if q.MinReferenceCount != nil {
		if *q.MinReferenceCount < 1 {
			s.fail(w, r, domain.Invalid("min_reference_count", "must be at least 1, got %d", *q.MinReferenceCount))
			return
		}
		cmd.MinReferenceCount = *q.MinReferenceCount
	}
	if q.MinConfidence != nil {
		if err := domain.CheckConfidence(*q.MinConfidence); err != nil {
			s.fail(w, r, domain.Invalid("min_confidence", "must be between 0 and 1, got %v", *q.MinConfidence))
			return
		}
		cmd.MinConfidence = *q.MinConfidence
	}
	if q.Note == "" {
		q.Note = fmt.Sprintf("auto-promote: reference_count >= %d and confidence >= %v", cmd.MinReferenceCount, cmd.MinConfidence)
	}
	c, err := plainCaller(r, jobs.ActorAutoPromote)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ids, err := s.Ledger.AutoPromote(r.Context(), c, q.Note, cmd)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"promoted": ids})
}

func (s *Server) expireCandidates(w http.ResponseWriter, r *http.Request) {
	var q expireRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	maxAge := s.Jobs.CandidateMaxAge
	if q.MaxAgeDays != nil {
		if !(*q.MaxAgeDays > 0) {
			s.fail(w, r, domain.Invalid("max_age_days", "must be more than 0, got %v", *q.MaxAgeDays))
			return
		}
		maxAge = time.Duration(*q.MaxAgeDays * float64(24*time.Hour))
	}
	if q.Note == "" {
		q.Note = fmt.Sprintf("expire: candidate never reinforced, older than %v days", maxAge.Hours()/24)
	}
	c, err := plainCaller(r, jobs.ActorExpiry)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ids, err := s.Ledger.ExpireCandidates(r.Context(), c, q.Note, domain.ExpireMemory{MaxAge: maxAge})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"expired": ids})
}

func (s *Server) recentAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f projections.AuditFilter
	var err error
	if v := q.Get("action"); v != "" {
		if !slices.Contains(domain.Actions, domain.Action(v)) {
			s.fail(w, r, domain.Invalid("action", "unknown action %q", v))
			return
		}
		f.Action = domain.Action(v)
	}
	f.Actor = q.Get("actor")
	if v := q.Get("since"); v != "" {
		if f.Since, err = time.Parse(time.RFC3339, v); err != nil {
			s.fail(w, r, domain.Invalid("since", "%q is not an RFC 3339 time (like 2026-04-16T21:54:10Z)", v))
			return
		}
	}
	if f.Limit, err = queryLimit(r); err != nil {
		s.fail(w, r, err)
		return
	}
	entries, err := s.DB.RecentAudit(f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]json.RawMessage{"entries": entries})
}

type healthResponse struct {
	Status      string            `json:"status"`
	Version     string            `json:"version"`
	LastSeq     uint64            `json:"last_seq"`
	Projections map[string]uint64 `json:"projections"`
	// AlertSinks is each sink's state since the process started.
	AlertSinks map[string]sinks.Status `json:"alert_sinks"`
	// AlertDeliveryFailures counts the alerts a sink recorded it gave up on.
	AlertDeliveryFailures int `json:"alert_delivery_failures"`
	// Subscriptions is the delivery of each webhook subscription not removed, by id.
	Subscriptions map[string]subscriptions.Status `json:"subscriptions,omitempty"`
	// Search is the search index's position: it follows the log on its own, so a search
	// misses the writes after indexed_seq.
	Search searchHealth `json:"search"`
	// CatchingUp, while the projections catch up with what the log held at the start, says
	// where they are (position) and where they are going (target); reads wait meanwhile.
	CatchingUp *catchingUp `json:"catching_up,omitempty"`
	Error      string      `json:"error,omitempty"`
}

type catchingUp struct {
	Position uint64 `json:"position"`
	Target   uint64 `json:"target"`
}

type searchHealth struct {
	IndexedSeq uint64 `json:"indexed_seq"`
	Lag        uint64 `json:"lag"`
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	h := healthResponse{Status: "ok", Version: s.Version}
	if c, ok := auth.CallerFrom(r.Context()); s.Auth != nil && (!ok || auth.Require(c, domain.RoleReader) != nil) {
		// Without a reader's token: up or degraded, nothing more.
		status, code := "ok", http.StatusOK
		failure, _ := s.Store.AppendFailure()
		summary := map[string]any{}
		if applied, target := s.Runner.CatchUp(); applied < target {
			// Where the catch-up stands says nothing of the ledger's content; the tokens
			// themselves may not be known yet.
			status, code = "catching_up", http.StatusServiceUnavailable
			summary["catching_up"] = catchingUp{Position: applied, Target: target}
		}
		if s.Runner.Err() != nil || s.Search.Err() != nil || failure != nil || s.logDamage() != nil {
			status, code = "degraded", http.StatusServiceUnavailable
		} else if _, err := s.Store.LastSeq(r.Context()); err != nil {
			status, code = "degraded", http.StatusServiceUnavailable
		}
		summary["status"] = status
		writeJSON(w, code, summary)
		return
	}
	errs := []error{s.logDamage()}
	var err error
	if h.LastSeq, err = s.Store.LastSeq(r.Context()); err != nil {
		errs = append(errs, err)
	}
	if h.Projections, err = s.DB.Checkpoints(); err != nil {
		errs = append(errs, err)
	}
	if failure, since := s.Runner.Failure(); failure != nil {
		errs = append(errs, fmt.Errorf("the projections cannot be written since %s (writes are refused with 507 or 503, reads are served at log position %d; it resumes by itself once the cause is gone): %w",
			since.UTC().Format(time.RFC3339), s.Runner.Applied(), failure))
	} else {
		errs = append(errs, s.Runner.Err())
	}
	if failure, since := s.Store.AppendFailure(); failure != nil {
		errs = append(errs, fmt.Errorf("the log refuses appends since %s (writes answer 507 or 503, reads are served; it resumes with the first append it stores): %w",
			since.UTC().Format(time.RFC3339), failure))
	}
	h.Search.IndexedSeq = s.Search.Applied()
	h.Search.Lag = h.LastSeq - min(h.LastSeq, h.Search.IndexedSeq)
	if err := s.Search.Err(); err != nil {
		errs = append(errs, fmt.Errorf("search index: %w", err))
	}
	h.AlertSinks = map[string]sinks.Status{}
	for _, sink := range s.Sinks {
		h.AlertSinks[sink.Sink.Name()] = sink.Status()
	}
	if h.AlertDeliveryFailures, _, err = s.DB.DeliveryFailures(0); err != nil {
		errs = append(errs, err)
	}
	// A subscription's failing receiver is that subscription's trouble, not the service's.
	h.Subscriptions = s.subscriptionStatuses(r.Context())
	status := http.StatusOK
	if applied, target := s.Runner.CatchUp(); applied < target {
		h.Status, status = "catching_up", http.StatusServiceUnavailable
		h.CatchingUp = &catchingUp{Position: applied, Target: target}
	}
	if err := errors.Join(errs...); err != nil {
		h.Status, h.Error, status = "degraded", err.Error(), http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}
