package ledger

import (
	"context"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// NewChunk is a chunk a caller gives: without an id it gets a new UUID, without an index the
// next one free in its document.
type NewChunk struct {
	ID          string
	ChunkIndex  *int
	Content     string
	HeadingPath string
}

// RecordDocument is a document a caller records (domain.RecordDocument with chunks whose id
// and index may be left to the ledger). An empty ID gets a new UUID.
type RecordDocument struct {
	ID, FilePath, FileHash, Title, DocType string
	Tags                                   []string
	Chunks                                 []NewChunk
}

// RecordDocument records a document and its chunks; the result's ID is the document's id.
func (l *Ledger) RecordDocument(ctx context.Context, c Caller, note string, cmd RecordDocument) (Result, error) {
	if cmd.ID == "" {
		cmd.ID = NewID()
	}
	return l.document(ctx, c, note, cmd.ID, func(st domain.DocumentState, meta domain.Meta) (domain.Event, error) {
		return domain.DecideRecordDocument(st, domain.RecordDocument{ID: cmd.ID, FilePath: cmd.FilePath, FileHash: cmd.FileHash,
			Title: cmd.Title, DocType: cmd.DocType, Tags: cmd.Tags, Chunks: chunks(cmd.Chunks, st.Indexes)}, meta)
	})
}

// AddChunks adds chunks to document id.
func (l *Ledger) AddChunks(ctx context.Context, c Caller, note, id string, add []NewChunk) (Result, error) {
	return l.document(ctx, c, note, id, func(st domain.DocumentState, meta domain.Meta) (domain.Event, error) {
		return domain.DecideAddChunks(st, domain.AddChunks{ID: id, Chunks: chunks(add, st.Indexes)}, meta)
	})
}

// DeleteDocument deletes document id.
func (l *Ledger) DeleteDocument(ctx context.Context, c Caller, note, id string) (Result, error) {
	return l.document(ctx, c, note, id, func(st domain.DocumentState, meta domain.Meta) (domain.Event, error) {
		return domain.DecideDeleteDocument(st, id, meta)
	})
}

// document decides a command on document id against the documents view, under the
// consistency boundary of every document (chunk ids are unique across documents).
func (l *Ledger) document(ctx context.Context, c Caller, note, id string, decide func(domain.DocumentState, domain.Meta) (domain.Event, error)) (Result, error) {
	meta, err := l.meta(c, note, "")
	if err != nil {
		return Result{}, err
	}
	res, err := l.onView(ctx, eventstore.DocumentSubjects, func() ([]domain.Event, error) {
		st, err := l.DB.DocumentState(id)
		if err != nil {
			return nil, err
		}
		ev, err := decide(st, meta)
		return []domain.Event{ev}, err
	})
	res.ID = id
	return res, err
}

// chunks turns given chunks into domain chunks: a chunk without an id gets a new UUID, a
// chunk without an index the next free one.
func chunks(given []NewChunk, taken map[int]bool) []domain.Chunk {
	next := 0
	for i := range taken {
		next = max(next, i+1)
	}
	for _, q := range given {
		if q.ChunkIndex != nil {
			next = max(next, *q.ChunkIndex+1)
		}
	}
	out := make([]domain.Chunk, len(given))
	for i, q := range given {
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
