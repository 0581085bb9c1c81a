package tests

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pfDocument is a document with its chunks, as the API answers it.
type pfDocument struct {
	domain.Document
	Chunks []domain.Chunk `json:"chunks"`
}

func pfGetDocument(t *testing.T, l *ledger, id string) pfDocument {
	t.Helper()
	var d pfDocument
	pfExpect(t, l, http.StatusOK, "GET", "/documents/"+id, nil).Decode(t, &d)
	return d
}

// pfImport appends document events straight to the log, as an import would, bypassing the
// API's rules, and waits until the projections have applied them.
func pfImport(t *testing.T, l *ledger, doc string, p domain.Payload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := l.Main.Store.Append(ctx, eventstore.Unchecked,
		domain.NewEvent(doc, domain.Meta{EventID: uuid.NewString(), Actor: "import", Time: time.Now()}, p))
	require.NoError(t, err)
	require.NoError(t, l.Main.Runner.WaitFor(ctx, res.Seq))
}

func TestDocumentRecordGetAddChunksDelete(t *testing.T) {
	l := startLedger(t)
	var d pfDocument
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{
		"id": "doc-1", "file_path": " notes/design.md ", "file_hash": "sha256:abc", "title": "Design",
		"doc_type": "markdown", "tags": []string{"Design", "design", " arch "},
		"chunks": []map[string]any{
			{"id": "c-b", "chunk_index": 1, "content": "second part", "heading_path": "Design > Log"},
			{"id": "c-a", "chunk_index": 0, "content": "héllo wörld", "heading_path": "Design"},
		},
	}).Decode(t, &d)
	require.Equal(t, domain.Document{ID: "doc-1", FilePath: "notes/design.md", FileHash: "sha256:abc", Title: "Design",
		DocType: "markdown", Tags: []string{"design", "arch"}}, d.Document)
	require.Equal(t, []domain.Chunk{
		{ID: "c-a", DocumentID: "doc-1", ChunkIndex: 0, Content: "héllo wörld", HeadingPath: "Design", CharCount: 11},
		{ID: "c-b", DocumentID: "doc-1", ChunkIndex: 1, Content: "second part", HeadingPath: "Design > Log", CharCount: 11},
	}, d.Chunks, "chunks in index order, char_count in characters")
	require.Equal(t, d, pfGetDocument(t, l, "doc-1"))

	// Added chunks without an index continue after the last one.
	var d2 pfDocument
	pfExpect(t, l, http.StatusCreated, "POST", "/documents/doc-1/chunks", map[string]any{
		"chunks": []map[string]any{{"id": "c-c", "content": "third"}, {"content": "fourth"}},
	}).Decode(t, &d2)
	require.Len(t, d2.Chunks, 4)
	for i, c := range d2.Chunks {
		require.Equal(t, i, c.ChunkIndex)
		require.Equal(t, "doc-1", c.DocumentID)
		require.NotEmpty(t, c.ID)
	}
	require.Equal(t, "c-c", d2.Chunks[2].ID)
	require.Equal(t, "fourth", d2.Chunks[3].Content)
	require.Equal(t, 6, d2.Chunks[3].CharCount)
	// An explicit index further on leaves a gap; the next implicit one follows it.
	pfExpect(t, l, http.StatusCreated, "POST", "/documents/doc-1/chunks", map[string]any{
		"chunks": []map[string]any{{"id": "c-z", "chunk_index": 9, "content": "ninth"}, {"id": "c-y", "content": "tenth"}},
	}).Decode(t, &d2)
	require.Equal(t, []int{0, 1, 2, 3, 9, 10}, pfIndexes(d2.Chunks))
	require.Equal(t, "c-y", d2.Chunks[5].ID)
	require.Equal(t, d2, pfGetDocument(t, l, "doc-1"))

	l.restart()
	require.Equal(t, d2, pfGetDocument(t, l, "doc-1"))

	// Deleting the document removes it and its chunks.
	res := pfExpect(t, l, http.StatusNoContent, "DELETE", "/documents/doc-1", nil)
	require.Empty(t, res.Body)
	requireProblem(t, l.do("GET", "/documents/doc-1", nil), http.StatusNotFound, "")
	requireProblem(t, l.do("DELETE", "/documents/doc-1", nil), http.StatusNotFound, "")
	requireProblem(t, l.do("POST", "/documents/doc-1/chunks", map[string]any{"chunks": []map[string]any{{"content": "x"}}}), http.StatusNotFound, "")
	// Its chunk ids are free again: a new document may use them, and so may doc-1 recorded anew.
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-2", "file_path": "b.md",
		"chunks": []map[string]any{{"id": "c-a", "content": "reused"}}})
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-1", "file_path": "a.md",
		"chunks": []map[string]any{{"id": "c-b", "content": "reused too"}}}).Decode(t, &d)
	require.Len(t, d.Chunks, 1, "the recorded-anew document has only its new chunks")
	require.Equal(t, "c-b", d.Chunks[0].ID)
}

func pfIndexes(cs []domain.Chunk) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.ChunkIndex
	}
	return out
}

func TestDocumentGeneratedIDs(t *testing.T) {
	l := startLedger(t)
	var d pfDocument
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{
		"file_path": "a.md", "chunks": []map[string]any{{"content": "one"}, {"content": "two"}, {"content": "three"}},
	}).Decode(t, &d)
	_, err := uuid.Parse(d.ID)
	require.NoError(t, err, "a document without an id gets a UUID")
	require.Equal(t, []int{0, 1, 2}, pfIndexes(d.Chunks))
	seen := map[string]bool{}
	for _, c := range d.Chunks {
		_, err := uuid.Parse(c.ID)
		require.NoError(t, err, "a chunk without an id gets a UUID")
		seen[c.ID] = true
	}
	require.Len(t, seen, 3)
	require.Equal(t, []string{}, d.Tags)
	require.Equal(t, d, pfGetDocument(t, l, d.ID))
}

func TestDocumentConflictsAndValidation(t *testing.T) {
	l := startLedger(t)
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-1", "file_path": "a.md",
		"chunks": []map[string]any{{"id": "c-1", "chunk_index": 0, "content": "one"}}})
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-2", "file_path": "b.md"})
	before := pfLastSeq(t, l)

	record := func(body map[string]any, status int, field string) {
		t.Helper()
		requireProblem(t, l.do("POST", "/documents", body), status, field)
	}
	chunk := func(kv ...any) []map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return []map[string]any{m}
	}
	// A chunk id another document holds is a conflict, when recording and when adding.
	record(map[string]any{"id": "doc-3", "file_path": "c.md", "chunks": chunk("id", "c-1", "content", "x")}, http.StatusConflict, "")
	requireProblem(t, l.do("POST", "/documents/doc-2/chunks", map[string]any{"chunks": chunk("id", "c-1", "content", "x")}), http.StatusConflict, "")
	// ... and so is a chunk id the document itself holds already.
	requireProblem(t, l.do("POST", "/documents/doc-1/chunks", map[string]any{"chunks": chunk("id", "c-1", "content", "x")}), http.StatusConflict, "")
	record(map[string]any{"id": "doc-1", "file_path": "a.md"}, http.StatusConflict, "")

	// Duplicate chunk indexes are malformed requests.
	record(map[string]any{"id": "doc-3", "file_path": "c.md", "chunks": []map[string]any{
		{"chunk_index": 0, "content": "x"}, {"chunk_index": 0, "content": "y"}}}, http.StatusBadRequest, "chunks[1].chunk_index")
	requireProblem(t, l.do("POST", "/documents/doc-1/chunks", map[string]any{"chunks": chunk("chunk_index", 0, "content", "x")}),
		http.StatusBadRequest, "chunks[0].chunk_index")
	record(map[string]any{"id": "doc-3", "file_path": "c.md", "chunks": []map[string]any{
		{"id": "same", "content": "x"}, {"id": "same", "content": "y"}}}, http.StatusBadRequest, "chunks[1].id")
	record(map[string]any{"id": "doc-3", "file_path": "c.md", "chunks": chunk("chunk_index", -1, "content", "x")}, http.StatusBadRequest, "chunks[0].chunk_index")
	record(map[string]any{"id": "doc-3", "file_path": "c.md", "chunks": chunk("content", "  ")}, http.StatusBadRequest, "chunks[0].content")
	record(map[string]any{"id": "doc-3", "file_path": "c.md", "chunks": chunk("id", " padded ", "content", "x")}, http.StatusBadRequest, "chunks[0].id")
	record(map[string]any{"id": "doc-3", "file_path": " "}, http.StatusBadRequest, "file_path")
	record(map[string]any{"id": "doc-3"}, http.StatusBadRequest, "file_path")
	record(map[string]any{"id": "doc.3", "file_path": "c.md"}, http.StatusBadRequest, "id")
	record(map[string]any{"id": "doc-3", "file_path": "c.md", "chunks": chunk("content", "x", "extra", 1)}, http.StatusBadRequest, "")
	requireProblem(t, l.do("POST", "/documents/doc-1/chunks", map[string]any{"chunks": []map[string]any{}}), http.StatusBadRequest, "chunks")
	requireProblem(t, l.do("POST", "/documents/nope/chunks", map[string]any{"chunks": chunk("content", "x")}), http.StatusNotFound, "")
	requireProblem(t, l.do("DELETE", "/documents/nope", nil), http.StatusNotFound, "")
	requireProblem(t, l.do("GET", "/documents/nope", nil), http.StatusNotFound, "")
	require.Equal(t, before, pfLastSeq(t, l), "refused commands write nothing")
	require.Len(t, pfGetDocument(t, l, "doc-1").Chunks, 1)
	require.Empty(t, pfGetDocument(t, l, "doc-2").Chunks)
}

// A document recorded over chunks an import wrote for it before it existed keeps those chunks:
// GET shows them, a new chunk may not silently take their index, and deleting the document
// removes them so that their ids are free again.
func TestDocumentRecordedOverImportedChunks(t *testing.T) {
	l := startLedger(t)
	pfImport(t, l, "doc-x", domain.ChunksAdded{Chunks: []domain.Chunk{
		{ID: "c9", DocumentID: "doc-x", ChunkIndex: 0, Content: "x", CharCount: 1}}})

	// Recorded without chunks: the imported chunk is the document's.
	var d pfDocument
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-x", "file_path": "x.md"}).Decode(t, &d)
	require.Equal(t, []string{"c9"}, pfChunkIDs(d.Chunks))
	pfExpect(t, l, http.StatusNoContent, "DELETE", "/documents/doc-x", nil)
	pfExpect(t, l, http.StatusCreated, "POST", "/documents", map[string]any{"id": "doc-y", "file_path": "y.md",
		"chunks": []map[string]any{{"id": "c9", "content": "reused"}}})

	// Recorded with a chunk at the imported chunk's index.
	pfImport(t, l, "doc-z", domain.ChunksAdded{Chunks: []domain.Chunk{
		{ID: "c7", DocumentID: "doc-z", ChunkIndex: 0, Content: "z", CharCount: 1}}})
	res := l.do("POST", "/documents", map[string]any{"id": "doc-z", "file_path": "z.md",
		"chunks": []map[string]any{{"id": "c8", "chunk_index": 0, "content": "new"}}})
	require.Contains(t, []int{http.StatusCreated, http.StatusBadRequest}, res.Status, "body: %s", res.Body)
	if res.Status == http.StatusBadRequest {
		return // index 0 is taken: refused, fine
	}
	res.Decode(t, &d)
	assert.ElementsMatch(t, []string{"c7", "c8"}, pfChunkIDs(d.Chunks),
		"recording doc-z with a chunk at index 0 hides the imported chunk c7 from the document")
	pfExpect(t, l, http.StatusNoContent, "DELETE", "/documents/doc-z", nil)
	res = l.do("POST", "/documents", map[string]any{"id": "doc-w", "file_path": "w.md",
		"chunks": []map[string]any{{"id": "c7", "content": "reused"}}})
	assert.Equal(t, http.StatusCreated, res.Status,
		"doc-z is deleted, so its chunk c7 must be gone and its id free; body: %s", res.Body)
}

func pfChunkIDs(cs []domain.Chunk) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}
