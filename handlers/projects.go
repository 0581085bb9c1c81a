package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

const projectSubjects = eventstore.SubjectPrefix + "project.>"

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
	q.ID = strings.TrimSpace(q.ID)
	meta, err := s.meta(r, DefaultActor, q.Note)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_, err = s.decideOnView(r.Context(), projectSubjects, func() ([]domain.Event, error) {
		if err := s.checkAliasesFree(q.Aliases); err != nil {
			return nil, err
		}
		reg, err := s.DB.Registry()
		if err != nil {
			return nil, err
		}
		ev, err := domain.DecideRegisterProject(reg, domain.RegisterProject{ID: q.ID, Aliases: q.Aliases, Description: q.Description}, meta)
		return []domain.Event{ev}, err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeProject(w, r, q.ID, http.StatusCreated)
}

func (s *Server) updateProject(w http.ResponseWriter, r *http.Request) {
	var q updateProjectRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	meta, err := s.meta(r, DefaultActor, q.Note)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := s.DB.ResolveProject(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_, err = s.decideOnView(r.Context(), projectSubjects, func() ([]domain.Event, error) {
		if q.Aliases != nil {
			if err := s.checkAliasesFree(*q.Aliases); err != nil {
				return nil, err
			}
		}
		reg, err := s.DB.Registry()
		if err != nil {
			return nil, err
		}
		return domain.DecideUpdateProject(reg, domain.UpdateProject{ID: id, Aliases: q.Aliases, Description: q.Description}, meta)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeProject(w, r, id, http.StatusOK)
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

// checkAliasesFree refuses aliases under which memories or state entries are already recorded:
// they would be hidden behind the project the alias leads to.
func (s *Server) checkAliasesFree(aliases []string) error {
	counts, err := s.DB.MemoryCounts()
	if err != nil {
		return err
	}
	for _, a := range aliases {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		state, err := s.DB.ListState(projections.StateFilter{Project: a, All: true})
		if err != nil {
			return err
		}
		if n := counts.ByProject[a]; n > 0 || len(state) > 0 {
			return fmt.Errorf("%d memories and %d state entries are recorded under project %q; register it as a project of its own rather than as an alias: %w",
				n, len(state), a, domain.ErrConflict)
		}
	}
	return nil
}

// canonicalProject resolves a project name given in a request (an id or an alias) to the
// project's id; an unknown name must itself be a valid id.
func (s *Server) canonicalProject(name string) (string, error) {
	p, err := domain.NormalizeProject(name)
	if err != nil || p == "" {
		return p, err
	}
	return s.DB.ResolveProject(p)
}
