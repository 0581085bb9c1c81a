package domain_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// pfDocState is the state of a document: exists or not, the indexes it has, and the owners of
// chunk ids.
func pfDocState(exists bool, indexes []int, owners map[string]string) domain.DocumentState {
	st := domain.DocumentState{Exists: exists, Indexes: map[int]bool{}}
	for _, i := range indexes {
		st.Indexes[i] = true
	}
	st.ChunkOwner = func(id string) (string, bool) {
		o, ok := owners[id]
		return o, ok
	}
	return st
}

func TestCheckDocumentID(t *testing.T) {
	for _, id := range []string{"doc-1", "a", "UPPER_and_123", strings.Repeat("d", 128), "6f1c7a9e-3d2b-4c1f-9a8e-0b1c2d3e4f50"} {
		require.NoError(t, domain.CheckDocumentID(id), id)
	}
	for _, id := range []string{"", "a.b", "a*", "a>", "a b", "a\tb", "a\nb", strings.Repeat("d", 129)} {
		pfRequireField(t, domain.CheckDocumentID(id), "id")
	}
}

func TestDecideRecordDocument(t *testing.T) {
	ev, err := domain.DecideRecordDocument(pfDocState(false, nil, nil), domain.RecordDocument{
		ID: "doc-1", FilePath: " notes/a.md ", FileHash: "h", Title: " Title ", DocType: "md", Tags: []string{"B", "b", " a "},
		Chunks: []domain.Chunk{
			{ID: "c-1", ChunkIndex: 1, Content: "héllo", HeadingPath: "H"},
			{ID: "c-0", ChunkIndex: 0, Content: "x", DocumentID: "ignored", CharCount: 99},
		},
	}, pfMeta)
	require.NoError(t, err)
	require.Equal(t, domain.EventDocumentRecorded, ev.Type)
	require.Equal(t, "document", ev.Kind())
	require.Equal(t, "doc-1", ev.AggregateID)
	require.Equal(t, domain.DocumentRecorded{FilePath: "notes/a.md", FileHash: "h", Title: "Title", DocType: "md", Tags: []string{"b", "a"},
		Chunks: []domain.Chunk{
			{ID: "c-1", DocumentID: "doc-1", ChunkIndex: 1, Content: "héllo", HeadingPath: "H", CharCount: 5},
			{ID: "c-0", DocumentID: "doc-1", ChunkIndex: 0, Content: "x", CharCount: 1},
		}}, ev.Data, "document id and char_count (in characters) are set by the ledger")

	ev, err = domain.DecideRecordDocument(pfDocState(false, nil, nil), domain.RecordDocument{ID: "doc-2", FilePath: "b.md"}, pfMeta)
	require.NoError(t, err)
	require.Equal(t, []string{}, ev.Data.(domain.DocumentRecorded).Tags)
	require.Empty(t, ev.Data.(domain.DocumentRecorded).Chunks)
}

func TestDecideRecordDocumentRefusals(t *testing.T) {
	owners := map[string]string{"taken": "doc-9"}
	rec := func(c domain.RecordDocument) error {
		if c.ID == "" {
			c.ID = "doc-1"
		}
		if c.FilePath == "" {
			c.FilePath = "a.md"
		}
		_, err := domain.DecideRecordDocument(pfDocState(false, nil, owners), c, pfMeta)
		return err
	}
	chunk := func(id string, index int, content string) domain.Chunk {
		return domain.Chunk{ID: id, ChunkIndex: index, Content: content}
	}
	for _, c := range []struct {
		cmd   domain.RecordDocument
		field string
	}{
		{domain.RecordDocument{ID: "a.b"}, "id"},
		{domain.RecordDocument{FilePath: "   "}, "file_path"},
		{domain.RecordDocument{FilePath: strings.Repeat("p", 1025)}, "file_path"},
		{domain.RecordDocument{Title: strings.Repeat("t", 501)}, "title"},
		{domain.RecordDocument{FileHash: strings.Repeat("h", 501)}, "file_hash"},
		{domain.RecordDocument{DocType: strings.Repeat("d", 501)}, "doc_type"},
		{domain.RecordDocument{Tags: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}}, "tags"},
		{domain.RecordDocument{Chunks: []domain.Chunk{chunk("", 0, "x")}}, "chunks[0].id"},
		{domain.RecordDocument{Chunks: []domain.Chunk{chunk(" c", 0, "x")}}, "chunks[0].id"},
		{domain.RecordDocument{Chunks: []domain.Chunk{chunk("c", 0, "x"), chunk("c", 1, "y")}}, "chunks[1].id"},
		{domain.RecordDocument{Chunks: []domain.Chunk{chunk("c", -1, "x")}}, "chunks[0].chunk_index"},
		{domain.RecordDocument{Chunks: []domain.Chunk{chunk("c", 3, "x"), chunk("d", 3, "y")}}, "chunks[1].chunk_index"},
		{domain.RecordDocument{Chunks: []domain.Chunk{chunk("c", 0, " \n ")}}, "chunks[0].content"},
		{domain.RecordDocument{Chunks: []domain.Chunk{chunk("c", 0, strings.Repeat("x", 100001))}}, "chunks[0].content"},
		{domain.RecordDocument{Chunks: []domain.Chunk{{ID: "c", Content: "x", HeadingPath: strings.Repeat("h", 501)}}}, "chunks[0].heading_path"},
	} {
		pfRequireField(t, rec(c.cmd), c.field)
	}
	// A chunk id another document holds is a conflict.
	err := rec(domain.RecordDocument{Chunks: []domain.Chunk{chunk("free", 0, "x"), chunk("taken", 1, "y")}})
	require.ErrorIs(t, err, domain.ErrConflict)
	require.Contains(t, err.Error(), "doc-9")
	// A document that exists is a conflict.
	_, err = domain.DecideRecordDocument(pfDocState(true, nil, nil), domain.RecordDocument{ID: "doc-1", FilePath: "a.md"}, pfMeta)
	require.ErrorIs(t, err, domain.ErrConflict)
	bad := pfMeta
	bad.Actor = ""
	_, err = domain.DecideRecordDocument(pfDocState(false, nil, nil), domain.RecordDocument{ID: "doc-1", FilePath: "a.md"}, bad)
	pfRequireField(t, err, "actor")
}

func TestDecideAddChunks(t *testing.T) {
	st := pfDocState(true, []int{0, 1}, map[string]string{"c-0": "doc-1", "other": "doc-2"})
	ev, err := domain.DecideAddChunks(st, domain.AddChunks{ID: "doc-1", Chunks: []domain.Chunk{{ID: "c-2", ChunkIndex: 2, Content: "two"}}}, pfMeta)
	require.NoError(t, err)
	require.Equal(t, domain.EventChunksAdded, ev.Type)
	require.Equal(t, "doc-1", ev.AggregateID)
	require.Equal(t, domain.ChunksAdded{Chunks: []domain.Chunk{{ID: "c-2", DocumentID: "doc-1", ChunkIndex: 2, Content: "two", CharCount: 3}}}, ev.Data)

	_, err = domain.DecideAddChunks(pfDocState(false, nil, nil), domain.AddChunks{ID: "doc-1", Chunks: []domain.Chunk{{ID: "c", Content: "x"}}}, pfMeta)
	require.ErrorIs(t, err, domain.ErrNotFound)
	_, err = domain.DecideAddChunks(st, domain.AddChunks{ID: "doc-1"}, pfMeta)
	pfRequireField(t, err, "chunks")
	_, err = domain.DecideAddChunks(st, domain.AddChunks{ID: "doc-1", Chunks: []domain.Chunk{{ID: "c-9", ChunkIndex: 1, Content: "x"}}}, pfMeta)
	pfRequireField(t, err, "chunks[0].chunk_index")
	for _, id := range []string{"c-0", "other"} {
		_, err = domain.DecideAddChunks(st, domain.AddChunks{ID: "doc-1", Chunks: []domain.Chunk{{ID: id, ChunkIndex: 5, Content: "x"}}}, pfMeta)
		require.ErrorIs(t, err, domain.ErrConflict, "chunk id %s is held already", id)
	}
}

func TestDecideDeleteDocument(t *testing.T) {
	_, err := domain.DecideDeleteDocument(pfDocState(false, nil, nil), "doc-1", pfMeta)
	require.ErrorIs(t, err, domain.ErrNotFound)
	ev, err := domain.DecideDeleteDocument(pfDocState(true, []int{0}, nil), "doc-1", pfMeta)
	require.NoError(t, err)
	require.Equal(t, domain.EventDocumentDeleted, ev.Type)
	require.Equal(t, "doc-1", ev.AggregateID)
	require.Equal(t, domain.DocumentDeleted{}, ev.Data)
}

// DuplicateKey is the integrity check's notion of a duplicate: same type, project and content
// once lowercased with whitespace collapsed.
func TestDuplicateKey(t *testing.T) {
	m := func(typ domain.MemoryType, project, content string) domain.Memory {
		return domain.Memory{MemoryType: typ, Project: project, Content: content}
	}
	base := domain.DuplicateKey(m(domain.TypePreference, "p", "uses python"))
	for _, content := range []string{"Uses  Python", "USES PYTHON", " uses\tpython\n", "uses \u00a0python"} {
		require.Equal(t, base, domain.DuplicateKey(m(domain.TypePreference, "p", content)), "%q", content)
	}
	for _, other := range []domain.Memory{
		m(domain.TypeKnowledge, "p", "uses python"),
		m(domain.TypePreference, "q", "uses python"),
		m(domain.TypePreference, "", "uses python"),
		m(domain.TypePreference, "p", "uses python3"),
		m(domain.TypePreference, "p", "usespython"),
	} {
		require.NotEqual(t, base, domain.DuplicateKey(other), "%+v", other)
	}
}
