package handlers

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
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
	project, err := s.canonicalProject(q.Project)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.mutate(w, r, NewID(), q.Note, domain.CreateMemory{
		MemoryType: q.MemoryType, Content: q.Content, Project: project, Status: q.Status,
		Confidence: q.Confidence, SourceChunkID: q.SourceChunkID, DomainTags: q.DomainTags,
		ValidUntil: q.ValidUntil.Value,
	})
}

func (s *Server) updateMemory(w http.ResponseWriter, r *http.Request) {
	var q updateMemoryRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	s.mutate(w, r, r.PathValue("id"), q.Note, domain.UpdateMemory{
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
	s.mutate(w, r, r.PathValue("id"), q.Note, domain.PromoteMemory{})
}

func (s *Server) rejectMemory(w http.ResponseWriter, r *http.Request) {
	var q noteRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	s.mutate(w, r, r.PathValue("id"), q.Note, domain.RejectMemory{})
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
	s.mutate(w, r, r.PathValue("id"), note, domain.InvalidateMemory{})
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
	if self, err := s.DB.GetMemory(r.PathValue("id")); err != nil || self == nil {
		s.fail(w, r, cmp.Or(err, fmt.Errorf("memory %s: %w", r.PathValue("id"), domain.ErrNotFound)))
		return
	}
	if q.SupersededBy != "" && q.SupersededBy != r.PathValue("id") {
		other, err := s.DB.GetMemory(q.SupersededBy)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if other == nil {
			s.fail(w, r, domain.Invalid("superseded_by", "memory %q does not exist", q.SupersededBy))
			return
		}
	}
	s.mutate(w, r, r.PathValue("id"), note, domain.SupersedeMemory{SupersededBy: q.SupersededBy})
}

func (s *Server) reinforceMemory(w http.ResponseWriter, r *http.Request) {
	var q reinforceRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	s.mutate(w, r, r.PathValue("id"), q.Note, domain.ReinforceMemory{Delta: q.Delta})
}

// mutate carries out one command on memory id and answers with the memory once the
// projections have applied it. A request whose Idempotency-Key names an event already in the
// ledger gets that event's answer and writes nothing.
func (s *Server) mutate(w http.ResponseWriter, r *http.Request, id, note string, cmd domain.Command) {
	_, isCreate := cmd.(domain.CreateMemory)
	meta, err := s.memoryMeta(r, DefaultActor, note)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	keyed := r.Header.Get("Idempotency-Key") != ""
	if keyed && s.answerRecorded(w, r, meta.EventID, id, cmd) {
		return
	}
	im, err := ifMatch(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := eventstore.AggregateSubject("memory", id); err != nil {
		// No memory can have such an id.
		s.fail(w, r, fmt.Errorf("memory %s: %w", id, domain.ErrNotFound))
		return
	}
	m, res, err := s.Store.UpdateMemory(r.Context(), id, eventstore.UpdateOptions{IfMatch: im, New: isCreate},
		func(m domain.Memory) ([]domain.Event, error) { return s.Rules.Decide(m, id, cmd, meta) })
	if err != nil && keyed && (errors.Is(err, domain.ErrConflict) || errors.Is(err, domain.ErrPrecondition)) {
		// The first try of this request may be in the log but not yet in the projections:
		// once they have caught up, its answer is the answer.
		if last, lerr := s.Store.LastSeq(r.Context()); lerr == nil && s.waitApplied(r.Context(), last) == nil &&
			s.answerRecorded(w, r, meta.EventID, id, cmd) {
			return
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.waitApplied(r.Context(), res.Seq); err != nil {
		s.fail(w, r, err)
		return
	}
	if res.Duplicate {
		// The key names an event already in the log: this request's first try, or another.
		if !s.answerRecorded(w, r, meta.EventID, id, cmd) {
			s.fail(w, r, fmt.Errorf("Idempotency-Key %q was already used for another request: %w", meta.EventID, domain.ErrConflict))
		}
		return
	}
	data, err := m.AppendJSON(make([]byte, 0, 512+len(m.Content)))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if isCreate {
		status = http.StatusCreated
		w.Header().Set("Location", "/memory/"+m.ID)
	}
	w.Header().Set("ETag", etag(m.Seq))
	writeRaw(w, status, data)
}

// answerRecorded answers a retried command from the audit entry of its event, when the ledger
// has it, and reports whether it did.
func (s *Server) answerRecorded(w http.ResponseWriter, r *http.Request, eventID, id string, cmd domain.Command) bool {
	_, isCreate := cmd.(domain.CreateMemory)
	data, err := s.DB.AuditByEventID(eventID)
	if err != nil {
		s.fail(w, r, err)
		return true
	}
	if data == nil {
		return false
	}
	var e projections.AuditEntry
	if err := json.Unmarshal(data, &e); err != nil {
		s.fail(w, r, err)
		return true
	}
	if !slices.Contains(domain.ActionsOf(cmd), e.Action) || (!isCreate && e.MemoryID != id) {
		s.fail(w, r, fmt.Errorf("Idempotency-Key %q was already used for another request (%s memory %s): %w",
			eventID, e.Action, e.MemoryID, domain.ErrConflict))
		return true
	}
	status := http.StatusOK
	if isCreate {
		status = http.StatusCreated
		w.Header().Set("Location", "/memory/"+e.MemoryID)
	}
	w.Header().Set("ETag", etag(e.Seq))
	w.Header().Set("Idempotent-Replayed", "true")
	writeRaw(w, status, e.After)
	return true
}

func (s *Server) getMemory(w http.ResponseWriter, r *http.Request) {
	data, err := s.DB.GetMemory(r.PathValue("id"))
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
	f, err := memoryFilter(r)
	if err == nil {
		f.Project, err = s.canonicalProject(f.Project)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	mems, next, err := s.DB.ListMemories(f)
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

func memoryFilter(r *http.Request) (projections.MemoryFilter, error) {
	q := r.URL.Query()
	if err := checkQuery(q, "status", "memory_type", "project", "limit", "cursor"); err != nil {
		return projections.MemoryFilter{}, err
	}
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
	if f.Project, err = domain.NormalizeProject(q.Get("project")); err != nil {
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
	data, err := s.DB.GetMemory(id)
	if err == nil && data == nil {
		err = fmt.Errorf("memory %s: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	entries, err := s.DB.MemoryAudit(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		MemoryID string            `json:"memory_id"`
		Entries  []json.RawMessage `json:"entries"`
	}{id, entries})
}
