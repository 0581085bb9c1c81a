package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/memledger/memledger/domain"
)

type registerProjectRequest struct {
	ID          string   `json:"id"`
	Aliases     []string `json:"aliases"`
	Description string   `json:"description"`
	Note        string   `json:"note"`
}

type updateProjectRequest struct {
	Aliases     *[]string `json:"aliases"`
	Description *string   `json:"description"`
	Note        string    `json:"note"`
}

func (s *Server) registerProject(w http.ResponseWriter, r *http.Request) {
	var q registerProjectRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := plainCaller(r, DefaultActor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Ledger.RegisterProject(r.Context(), c, q.Note, domain.RegisterProject{ID: q.ID, Aliases: q.Aliases, Description: q.Description})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeProject(w, r, res.ID, http.StatusCreated)
}

func (s *Server) updateProject(w http.ResponseWriter, r *http.Request) {
	var q updateProjectRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := plainCaller(r, DefaultActor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Ledger.UpdateProject(r.Context(), c, q.Note, domain.UpdateProject{ID: r.PathValue("id"), Aliases: q.Aliases, Description: q.Description})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeProject(w, r, res.ID, http.StatusOK)
}

func (s *Server) writeProject(w http.ResponseWriter, r *http.Request, name string, status int) {
	data, err := s.DB.GetProject(name)
	if err == nil && data == nil {
		err = fmt.Errorf("project %s: %w", name, domain.ErrNotFound)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeRaw(w, status, data)
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) {
	s.writeProject(w, r, r.PathValue("id"), http.StatusOK)
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	projects, err := s.DB.ListProjects()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]json.RawMessage{"projects": projects})
}
