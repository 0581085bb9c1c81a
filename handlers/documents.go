package handlers

import (
	"fmt"
	"net/http"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

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

// newChunks are the requested chunks as the ledger takes them.
func newChunks(qs []chunkRequest) []ledger.NewChunk {
	out := make([]ledger.NewChunk, len(qs))
	for i, q := range qs {
		out[i] = ledger.NewChunk(q)
	}
	return out
}

func (s *Server) recordDocument(w http.ResponseWriter, r *http.Request) {
	var q recordDocumentRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := plainCaller(r, DefaultActor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Ledger.RecordDocument(r.Context(), c, q.Note, ledger.RecordDocument{ID: q.ID, FilePath: q.FilePath, FileHash: q.FileHash,
		Title: q.Title, DocType: q.DocType, Tags: q.Tags, Chunks: newChunks(q.Chunks)})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeDocument(w, r, res.ID, http.StatusCreated)
}

func (s *Server) addChunks(w http.ResponseWriter, r *http.Request) {
	var q addChunksRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := plainCaller(r, DefaultActor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Ledger.AddChunks(r.Context(), c, q.Note, r.PathValue("id"), newChunks(q.Chunks))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeDocument(w, r, res.ID, http.StatusCreated)
}

func (s *Server) deleteDocument(w http.ResponseWriter, r *http.Request) {
	c, err := plainCaller(r, DefaultActor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.Ledger.DeleteDocument(r.Context(), c, r.URL.Query().Get("note"), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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
