package handlers

import (
	"fmt"
	"net/http"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

const documentSubjects = eventstore.SubjectPrefix + "document.>"

type chunkRequest struct {
	ID          string `json:"id"`
	ChunkIndex  *int   `json:"chunk_index"`
	Content     string `json:"content"`
	HeadingPath string `json:"heading_path"`
}

type recordDocumentRequest struct {
	ID       string         `json:"id"`
	FilePath string         `json:"file_path"`
	FileHash string         `json:"file_hash"`
	Title    string         `json:"title"`
	DocType  string         `json:"doc_type"`
	Tags     []string       `json:"tags"`
	Chunks   []chunkRequest `json:"chunks"`
	Note     string         `json:"note"`
}

type addChunksRequest struct {
	Chunks []chunkRequest `json:"chunks"`
	Note   string         `json:"note"`
}

// chunks turns requested chunks into domain chunks: a chunk without an id gets a new UUID, a
// chunk without an index the next free one.
func chunks(qs []chunkRequest, taken map[int]bool) []domain.Chunk {
	next := 0
	for i := range taken {
		next = max(next, i+1)
	}
	for _, q := range qs {
		if q.ChunkIndex != nil {
			next = max(next, *q.ChunkIndex+1)
		}
	}
	out := make([]domain.Chunk, len(qs))
	for i, q := range qs {
		c := domain.Chunk{ID: q.ID, Content: q.Content, HeadingPath: q.HeadingPath}
		if c.ID == "" {
			c.ID = NewID()
		}
		if q.ChunkIndex != nil {
			c.ChunkIndex = *q.ChunkIndex
		} else {
			c.ChunkIndex, next = next, next+1
		}
		out[i] = c
	}
	return out
}

func (s *Server) recordDocument(w http.ResponseWriter, r *http.Request) {
	var q recordDocumentRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	if q.ID == "" {
		q.ID = NewID()
	}
	meta, err := s.meta(r, DefaultActor, q.Note)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	err = s.decideDocument(r, q.ID, func(st domain.DocumentState) (domain.Event, error) {
		return domain.DecideRecordDocument(st, domain.RecordDocument{ID: q.ID, FilePath: q.FilePath, FileHash: q.FileHash,
			Title: q.Title, DocType: q.DocType, Tags: q.Tags, Chunks: chunks(q.Chunks, st.Indexes)}, meta)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeDocument(w, r, q.ID, http.StatusCreated)
}

func (s *Server) addChunks(w http.ResponseWriter, r *http.Request) {
	var q addChunksRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	meta, err := s.meta(r, DefaultActor, q.Note)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	err = s.decideDocument(r, id, func(st domain.DocumentState) (domain.Event, error) {
		return domain.DecideAddChunks(st, domain.AddChunks{ID: id, Chunks: chunks(q.Chunks, st.Indexes)}, meta)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeDocument(w, r, id, http.StatusCreated)
}

func (s *Server) deleteDocument(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	meta, err := s.meta(r, DefaultActor, r.URL.Query().Get("note"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	err = s.decideDocument(r, id, func(st domain.DocumentState) (domain.Event, error) {
		return domain.DecideDeleteDocument(st, id, meta)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decideDocument decides a command on document id against the documents view, under the
// consistency boundary of every document (chunk ids are unique across documents).
func (s *Server) decideDocument(r *http.Request, id string, decide func(domain.DocumentState) (domain.Event, error)) error {
	_, err := s.decideOnView(r.Context(), documentSubjects, func() ([]domain.Event, error) {
		st, err := s.DB.DocumentState(id)
		if err != nil {
			return nil, err
		}
		ev, err := decide(st)
		return []domain.Event{ev}, err
	})
	return err
}

func (s *Server) getDocument(w http.ResponseWriter, r *http.Request) {
	s.writeDocument(w, r, r.PathValue("id"), http.StatusOK)
}

func (s *Server) writeDocument(w http.ResponseWriter, r *http.Request, id string, status int) {
	doc, chunks, err := s.DB.GetDocument(id)
	if err == nil && doc == nil {
		err = fmt.Errorf("document %s: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, status, struct {
		*domain.Document
		Chunks []domain.Chunk `json:"chunks"`
	}{doc, chunks})
}
