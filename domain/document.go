package domain

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Bounds of documents and chunks.
const (
	maxFilePath     = 1024
	maxDocField     = 500
	maxChunkContent = 100000
	maxChunks       = 10000
)

// Document is a source document.
type Document struct {
	ID       string   `json:"id"`
	FilePath string   `json:"file_path"`
	FileHash string   `json:"file_hash"`
	Title    string   `json:"title"`
	DocType  string   `json:"doc_type"`
	Tags     []string `json:"tags"`
}

// Chunk is a piece of a document that memories cite through source_chunk_id.
type Chunk struct {
	ID          string `json:"id"`
	DocumentID  string `json:"document_id"`
	ChunkIndex  int    `json:"chunk_index"`
	Content     string `json:"content"`
	HeadingPath string `json:"heading_path"`
	CharCount   int    `json:"char_count"`
}

// DocumentRecorded records a document and its first chunks.
type DocumentRecorded struct {
	FilePath string   `json:"file_path"`
	FileHash string   `json:"file_hash"`
	Title    string   `json:"title"`
	DocType  string   `json:"doc_type"`
	Tags     []string `json:"tags"`
	Chunks   []Chunk  `json:"chunks"`
}

// ChunksAdded records more chunks of a document.
type ChunksAdded struct {
	Chunks []Chunk `json:"chunks"`
}

// DocumentDeleted records that a document and its chunks are gone.
type DocumentDeleted struct{}

// Document event type names.
const (
	EventDocumentRecorded = "document.recorded"
	EventChunksAdded      = "document.chunks_added"
	EventDocumentDeleted  = "document.deleted"
)

// EventType implements Payload.
func (DocumentRecorded) EventType() string { return EventDocumentRecorded }

// EventType implements Payload.
func (ChunksAdded) EventType() string { return EventChunksAdded }

// EventType implements Payload.
func (DocumentDeleted) EventType() string { return EventDocumentDeleted }

// DocumentState is what document commands are decided on: whether the document exists, its
// chunks' indexes and ids, and which chunk ids other documents hold.
type DocumentState struct {
	Exists bool
	// Indexes are the chunk indexes the document has.
	Indexes map[int]bool
	// ChunkOwner says which document holds a chunk id, for the ids a command names.
	ChunkOwner func(id string) (string, bool)
}

// RecordDocument records a new document with its chunks.
type RecordDocument struct {
	ID                                 string
	FilePath, FileHash, Title, DocType string
	Tags                               []string
	Chunks                             []Chunk
}

// AddChunks adds chunks to an existing document.
type AddChunks struct {
	ID     string
	Chunks []Chunk
}

// CheckDocumentID checks a document id: it is a subject token of the log.
func CheckDocumentID(id string) error {
	if len(id) > 128 || !IsToken(id) {
		return Invalid("id", "%q must be 1 to 128 characters without spaces, control characters, dots, * or >", id)
	}
	return nil
}

// DecideRecordDocument checks c.
func DecideRecordDocument(st DocumentState, c RecordDocument, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	if err := CheckDocumentID(c.ID); err != nil {
		return Event{}, err
	}
	if st.Exists {
		return Event{}, fmt.Errorf("document %s already exists; delete it first or add chunks: %w", c.ID, ErrConflict)
	}
	p := DocumentRecorded{FilePath: strings.TrimSpace(c.FilePath), FileHash: c.FileHash, Title: strings.TrimSpace(c.Title), DocType: c.DocType}
	if p.FilePath == "" || utf8.RuneCountInString(p.FilePath) > maxFilePath {
		return Event{}, Invalid("file_path", "must be 1 to %d characters", maxFilePath)
	}
	for field, v := range map[string]string{"file_hash": p.FileHash, "title": p.Title, "doc_type": p.DocType} {
		if utf8.RuneCountInString(v) > maxDocField {
			return Event{}, Invalid(field, "is longer than %d characters", maxDocField)
		}
	}
	var err error
	if p.Tags, err = NormalizeTags(c.Tags, DefaultMaxTags, DefaultMaxTagLength); err != nil {
		return Event{}, Invalid("tags", "%s", err.(*FieldError).Reason)
	}
	if p.Chunks, err = checkChunks(st, c.ID, c.Chunks); err != nil {
		return Event{}, err
	}
	return NewEvent(c.ID, meta, p), nil
}

// DecideAddChunks checks c.
func DecideAddChunks(st DocumentState, c AddChunks, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	if !st.Exists {
		return Event{}, fmt.Errorf("document %s: %w", c.ID, ErrNotFound)
	}
	if len(c.Chunks) == 0 {
		return Event{}, Invalid("chunks", "must hold at least one chunk")
	}
	chunks, err := checkChunks(st, c.ID, c.Chunks)
	if err != nil {
		return Event{}, err
	}
	return NewEvent(c.ID, meta, ChunksAdded{Chunks: chunks}), nil
}

// DecideDeleteDocument checks that the document exists.
func DecideDeleteDocument(st DocumentState, id string, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	if !st.Exists {
		return Event{}, fmt.Errorf("document %s: %w", id, ErrNotFound)
	}
	return NewEvent(id, meta, DocumentDeleted{}), nil
}

// checkChunks validates chunks for document doc: ids given (the caller fills missing ones),
// unique here and across documents, indexes unique, content non-empty; it sets DocumentID and
// CharCount.
func checkChunks(st DocumentState, doc string, chunks []Chunk) ([]Chunk, error) {
	if len(chunks)+len(st.Indexes) > maxChunks {
		return nil, Invalid("chunks", "a document holds at most %d chunks", maxChunks)
	}
	out := make([]Chunk, 0, len(chunks))
	ids := map[string]bool{}
	indexes := map[int]bool{}
	for i, c := range chunks {
		field := fmt.Sprintf("chunks[%d]", i)
		if err := CheckRef(field+".id", c.ID); err != nil || c.ID == "" {
			return nil, Invalid(field+".id", "must be 1 to 128 characters without leading or trailing spaces")
		}
		if ids[c.ID] {
			return nil, Invalid(field+".id", "%q appears twice", c.ID)
		}
		if owner, ok := st.ChunkOwner(c.ID); ok {
			return nil, fmt.Errorf("chunk %s already belongs to document %s: %w", c.ID, owner, ErrConflict)
		}
		if c.ChunkIndex < 0 {
			return nil, Invalid(field+".chunk_index", "must not be negative")
		}
		if indexes[c.ChunkIndex] || st.Indexes[c.ChunkIndex] {
			return nil, Invalid(field+".chunk_index", "%d is already taken in document %s", c.ChunkIndex, doc)
		}
		if strings.TrimSpace(c.Content) == "" {
			return nil, Invalid(field+".content", "must not be empty")
		}
		n := utf8.RuneCountInString(c.Content)
		if n > maxChunkContent {
			return nil, Invalid(field+".content", "is %d characters long; the maximum is %d", n, maxChunkContent)
		}
		if utf8.RuneCountInString(c.HeadingPath) > maxDocField {
			return nil, Invalid(field+".heading_path", "is longer than %d characters", maxDocField)
		}
		ids[c.ID], indexes[c.ChunkIndex] = true, true
		c.DocumentID, c.CharCount = doc, n
		out = append(out, c)
	}
	return out, nil
}
