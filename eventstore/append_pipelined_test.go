package eventstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/eventstore/eventstoretest"
)

func TestAppendPipelined(t *testing.T) {
	s := eventstoretest.Open(t, eventstore.FsyncInterval)
	ctx := t.Context()
	a, b := eventstoretest.NewMemoryID(), eventstoretest.NewMemoryID()
	// Two memories interleaved, each expectation the position its previous event takes.
	evs := []eventstore.Prepared{
		{Event: eventstoretest.MemEvent(a, 0, eventstoretest.CreatedPayload(domain.StatusCandidate)), Expected: 0},
		{Event: eventstoretest.MemEvent(b, 1, eventstoretest.CreatedPayload(domain.StatusActive)), Expected: 0},
		{Event: eventstoretest.MemEvent(a, 2, domain.MemoryPromoted{}), Expected: 1},
		{Event: eventstoretest.MemEvent(b, 3, domain.MemoryInvalidated{}), Expected: 2},
	}
	var got []uint64
	require.NoError(t, s.AppendPipelined(ctx, evs, 2, func(i int, ap eventstore.Appended) {
		require.Equal(t, len(got), i, "in order")
		got = append(got, ap.Seq)
	}))
	require.Equal(t, []uint64{1, 2, 3, 4}, got)
	loaded, last, err := s.Load(ctx, domain.KindMemory, a)
	require.NoError(t, err)
	require.Equal(t, uint64(3), last)
	require.Len(t, loaded, 2)

	// A wrong expectation (another writer's event in between) refuses that append and those
	// after it; the ones before it stand.
	more := []eventstore.Prepared{
		{Event: eventstoretest.MemEvent(a, 4, domain.MemoryReinforced{Delta: 0.1}), Expected: 3},
		{Event: eventstoretest.MemEvent(b, 5, domain.MemoryReinforced{Delta: 0.1}), Expected: 2},
		{Event: eventstoretest.MemEvent(a, 6, domain.MemoryReinforced{Delta: 0.1}), Expected: 6},
	}
	var acked []int
	err = s.AppendPipelined(ctx, more, 0, func(i int, ap eventstore.Appended) { acked = append(acked, i) })
	require.ErrorIs(t, err, domain.ErrConflict)
	require.Equal(t, []int{0}, acked)
	seq, err := s.LastSeq(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(5), seq)
}
