package projections

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

// In bulk, the index writes what it holds once it holds searchBulkDocs memories, in one batch
// with the checkpoint: the documents written are never ahead of the checkpoint (a crash
// between batches without it would fold their events again at the next start).
func TestSearchBulkWritesItsHeldMemoriesWithTheCheckpoint(t *testing.T) {
	s, err := OpenSearch(filepath.Join(t.TempDir(), "search.bleve"), nil)
	require.NoError(t, err)
	defer s.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]domain.Event, 0, searchBulkDocs)
	for i := range searchBulkDocs {
		id := fmt.Sprintf("m%05d", i)
		ev := domain.NewEvent(id, domain.Meta{EventID: "e" + id, Actor: "t", Time: at},
			domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: "fact " + id, Status: domain.StatusActive, Confidence: 0.5})
		ev.Seq = uint64(i + 1)
		evs = append(evs, ev)
	}
	s.CatchUpTo = uint64(2 * searchBulkDocs) // still catching up: in bulk
	require.NoError(t, s.apply(evs[:searchBulkDocs-1], true))
	require.Zero(t, s.Applied(), "held, nothing written yet")
	require.NoError(t, s.apply(evs[searchBulkDocs-1:], true))
	require.Equal(t, uint64(searchBulkDocs), s.Applied(), "written with its checkpoint")
	require.Nil(t, s.held.mems)
	m, err := s.memory(fmt.Sprintf("m%05d", searchBulkDocs-1))
	require.NoError(t, err)
	require.Equal(t, "fact "+fmt.Sprintf("m%05d", searchBulkDocs-1), m.Content)
}
