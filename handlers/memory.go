package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

type createMemoryRequest struct {
	MemoryType    string       `json:"memory_type"`
	Content       string       `json:"content"`
	Project       string       `json:"project"`
	Status        string       `json:"status"`
	Confidence    *float64     `json:"confidence"`
	SourceChunkID string       `json:"source_chunk_id"`
	DomainTags    []string     `json:"domain_tags"`
	ValidUntil    optionalTime `json:"valid_until"`
	Note          string       `json:"note"`
}

type updateMemoryRequest struct {
	MemoryType *string      `json:"memory_type"`
	Content    *string      `json:"content"`
	Confidence *float64     `json:"confidence"`
	DomainTags *[]string    `json:"domain_tags"`
	ValidUntil optionalTime `json:"valid_until"`
	Status     *string      `json:"status"`
	Note       string       `json:"note"`
}

// noteRequest is the body of promote and reject.
type noteRequest struct {
	Note string `json:"note"`
}

// reasonRequest is the body of invalidate, supersede and DELETE: the reason is the note.
type reasonRequest struct {
	Reason       string `json:"reason"`
	Note         string `json:"note"`
	SupersededBy string `json:"superseded_by"`
}

func (q reasonRequest) note() (string, error) {
	if q.Reason != "" && q.Note != "" && q.Reason != q.Note {
		return "", domain.Invalid("reason", "give either reason or note; they are the same thing")
	}
	if q.Reason != "" {
		return q.Reason, nil
	}
	return q.Note, nil
}

type reinforceRequest struct {
	Delta float64 `json:"delta"`
	Note  string  `json:"note"`
}

func (s *Server) createMemory(w http.ResponseWriter, r *http.Request) {
	var q createMemoryRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	o, err := memoryOptions(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Ledger.CreateMemory(r.Context(), caller(r, DefaultActor), q.Note, domain.CreateMemory{
		MemoryType: q.MemoryType, Content: q.Content, Project: q.Project, Status: q.Status,
		Confidence: q.Confidence, SourceChunkID: q.SourceChunkID, DomainTags: q.DomainTags,
		ValidUntil: q.ValidUntil.Value,
	}, o)
	s.writeMemory(w, r, res, err)
}

func (s *Server) updateMemory(w http.ResponseWriter, r *http.Request) {
	var q updateMemoryRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	s.mutate(w, r, q.Note, domain.UpdateMemory{
		MemoryType: q.MemoryType, Content: q.Content, Confidence: q.Confidence,
		DomainTags: q.DomainTags, SetValidUntil: q.ValidUntil.Set, ValidUntil: q.ValidUntil.Value,
		Status: q.Status,
	})
}

func (s *Server) promoteMemory(w http.ResponseWriter, r *http.Request) {
	var q noteRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	s.mutate(w, r, q.Note, domain.PromoteMemory{})
}

func (s *Server) rejectMemory(w http.ResponseWriter, r *http.Request) {
	var q noteRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	s.mutate(w, r, q.Note, domain.RejectMemory{})
}

// invalidateMemory serves both POST /memory/{id}/invalidate and DELETE /memory/{id}: nothing
// is ever erased.
func (s *Server) invalidateMemory(w http.ResponseWriter, r *http.Request) {
	var q reasonRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	if q.SupersededBy != "" {
		s.fail(w, r, domain.Invalid("superseded_by", "belongs to /supersede, not to an invalidation"))
		return
	}
	note, err := q.note()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.mutate(w, r, note, domain.InvalidateMemory{})
}

func (s *Server) supersedeMemory(w http.ResponseWriter, r *http.Request) {
	var q reasonRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	note, err := q.note()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.mutate(w, r, note, domain.SupersedeMemory{SupersededBy: q.SupersededBy})
}

func (s *Server) reinforceMemory(w http.ResponseWriter, r *http.Request) {
	var q reinforceRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	s.mutate(w, r, q.Note, domain.ReinforceMemory{Delta: q.Delta})
}

// mutate carries out one command on the memory the path names.
func (s *Server) mutate(w http.ResponseWriter, r *http.Request, note string, cmd domain.Command) {
	o, err := memoryOptions(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Ledger.ChangeMemory(r.Context(), caller(r, DefaultActor), note, r.PathValue("id"), cmd, o)
	s.writeMemory(w, r, res, err)
}

// writeMemory answers a memory command with the memory and its version as ETag.
func (s *Server) writeMemory(w http.ResponseWriter, r *http.Request, res ledger.MemoryResult, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		w.Header().Set("Location", "/memory/"+res.Memory.ID)
	}
	w.Header().Set("ETag", etag(res.Seq))
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeRaw(w, status, res.JSON)
}

func (s *Server) getMemory(w http.ResponseWriter, r *http.Request) {
	at, asOf, err := s.asOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var data []byte
	if asOf {
		data, err = s.DB.MemoryAsOf(r.PathValue("id"), at)
	} else {
		data, err = s.DB.GetMemory(r.PathValue("id"))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if data == nil {
		s.fail(w, r, fmt.Errorf("memory %s: %w", r.PathValue("id"), domain.ErrNotFound))
		return
	}
	var v struct {
		Seq uint64 `json:"seq"`
	}
	json.Unmarshal(data, &v)
	w.Header().Set("ETag", etag(v.Seq))
	writeRaw(w, http.StatusOK, data)
}

func (s *Server) listMemories(w http.ResponseWriter, r *http.Request) {
	f, err := s.memoryFilter(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	at, asOf, err := s.asOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var mems []json.RawMessage
	var next uint64
	if asOf {
		mems, next, err = s.DB.ListMemoriesAsOf(f, at)
	} else {
		mems, next, err = s.DB.ListMemories(f)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var cursor *string
	if next > 0 {
		c := strconv.FormatUint(next, 10)
		cursor = &c
	}
	writeJSON(w, http.StatusOK, struct {
		Memories   []json.RawMessage `json:"memories"`
		NextCursor *string           `json:"next_cursor"`
	}{mems, cursor})
}

func (s *Server) memoryFilter(r *http.Request) (projections.MemoryFilter, error) {
	q := r.URL.Query()
	var f projections.MemoryFilter
	var err error
	if v := q.Get("status"); v != "" {
		if f.Status, err = domain.ParseStatus(v); err != nil {
			return f, err
		}
	}
	if v := q.Get("memory_type"); v != "" {
		if f.MemoryType, err = domain.ParseMemoryType(v); err != nil {
			return f, err
		}
	}
	if f.Project, err = s.Ledger.Project(q.Get("project")); err != nil {
		return f, err
	}
	if f.Limit, err = queryLimit(r); err != nil {
		return f, err
	}
	if v := q.Get("cursor"); v != "" {
		if f.Before, err = strconv.ParseUint(v, 10, 64); err != nil || f.Before == 0 {
			return f, domain.Invalid("cursor", "%q is not a cursor from next_cursor", v)
		}
	}
	return f, nil
}

func (s *Server) memoryAudit(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	at, asOf, err := s.asOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var data []byte
	if asOf {
		data, err = s.DB.MemoryAsOf(id, at)
	} else {
		data, err = s.DB.GetMemory(id)
	}
	if err == nil && data == nil {
		err = fmt.Errorf("memory %s: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var entries []json.RawMessage
	if asOf {
		entries, err = s.DB.MemoryAuditAsOf(id, at)
	} else {
		entries, err = s.DB.MemoryAudit(id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		MemoryID string            `json:"memory_id"`
		Entries  []json.RawMessage `json:"entries"`
	}{id, entries})
}
