package handlers

import (
	"encoding/json"
	"net/http"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

type setStateRequest struct {
	Project    string   `json:"project"`
	Category   string   `json:"category"`
	Key        string   `json:"key"`
	Value      string   `json:"value"`
	Source     string   `json:"source"`
	Confidence *float64 `json:"confidence"`
	Note       string   `json:"note"`
}

type invalidateStateRequest struct {
	Project  string `json:"project"`
	Category string `json:"category"`
	Key      string `json:"key"`
	Note     string `json:"note"`
}

func (s *Server) setState(w http.ResponseWriter, r *http.Request) {
	var q setStateRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := plainCaller(r, DefaultActor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Ledger.SetState(r.Context(), c, q.Note, domain.SetState{Project: q.Project, Category: q.Category, Key: q.Key,
		Value: q.Value, Source: q.Source, Confidence: q.Confidence})
	s.writeState(w, r, res, q.Category, q.Key, err)
}

// invalidateState serves DELETE /project/state, with the entry named in the body or in the
// query (project, category, key, and the note).
func (s *Server) invalidateState(w http.ResponseWriter, r *http.Request) {
	var q invalidateStateRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	qs := r.URL.Query()
	for _, f := range []struct {
		dst  *string
		name string
	}{{&q.Project, "project"}, {&q.Category, "category"}, {&q.Key, "key"}, {&q.Note, "note"}} {
		if *f.dst == "" {
			*f.dst = qs.Get(f.name)
		}
	}
	c, err := plainCaller(r, DefaultActor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Ledger.InvalidateState(r.Context(), c, q.Note, domain.InvalidateState{Project: q.Project, Category: q.Category, Key: q.Key})
	s.writeState(w, r, res, q.Category, q.Key, err)
}

// writeState answers a state command with the entry it changed.
func (s *Server) writeState(w http.ResponseWriter, r *http.Request, res ledger.Result, category, key string, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.DB.ProjectState(res.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st[domain.StateKey{Category: category, Key: key}])
}

func (s *Server) listState(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	project, err := s.Ledger.Project(q.Get("project"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if q.Get("category") != "" && project == "" {
		s.fail(w, r, domain.Invalid("category", "needs a project"))
		return
	}
	at, asOf, err := s.asOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := projections.StateFilter{Project: project, Category: q.Get("category")}
	switch v := q.Get("include_invalid"); v {
	case "", "false":
	case "true":
		f.All = true
	default:
		s.fail(w, r, domain.Invalid("include_invalid", "must be true or false, got %q", v))
		return
	}
	var entries []json.RawMessage
	if asOf {
		entries, err = s.DB.ListStateAsOf(f, at)
	} else {
		entries, err = s.DB.ListState(f)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]json.RawMessage{"entries": entries})
}

func (s *Server) stateAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	project, err := s.Ledger.Project(q.Get("project"))
	if err == nil && project == "" {
		err = domain.Invalid("project", "is required")
	}
	if err == nil && q.Get("key") != "" && q.Get("category") == "" {
		err = domain.Invalid("key", "needs a category")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	entries, err := s.DB.StateAudit(project, q.Get("category"), q.Get("key"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"project": project, "entries": entries})
}
