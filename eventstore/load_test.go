package eventstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

func TestLoadUnknownMemory(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	appendCreated(t, s, domain.StatusActive)

	evs, last, err := s.Load(t.Context(), "memory", newMemoryID())
	require.NoError(t, err)
	require.Empty(t, evs)
	require.Zero(t, last)

	// Also on an empty stream.
	empty := openStore(t, eventstore.FsyncInterval)
	evs, last, err = empty.Load(t.Context(), "memory", newMemoryID())
	require.NoError(t, err)
	require.Empty(t, evs)
	require.Zero(t, last)
}

func TestLoadManyEvents(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	ctx := t.Context()

	// More than two direct-get batches, interleaved with another memory's events.
	const n = 1200
	require.Greater(t, n, 2*eventstore.LoadBatch)
	id, last := appendCreated(t, s, domain.StatusActive)
	other, otherLast := appendCreated(t, s, domain.StatusActive)
	want := []uint64{last}
	for i := 1; i < n; i++ {
		ev := memEvent(id, i, domain.MemoryReinforced{Delta: 0.001})
		res, err := s.Append(ctx, last, ev)
		require.NoError(t, err)
		last = res.Seq
		want = append(want, last)
		if i%3 == 0 {
			res, err := s.Append(ctx, otherLast, memEvent(other, i, domain.MemoryReinforced{Delta: 0.001}))
			require.NoError(t, err)
			otherLast = res.Seq
		}
	}

	evs, gotLast, err := s.Load(ctx, "memory", id)
	require.NoError(t, err)
	require.Len(t, evs, n)
	require.Equal(t, want, seqs(evs), "every event, in log order")
	require.Equal(t, last, gotLast)
	var m domain.Memory
	for _, ev := range evs {
		m = domain.ApplyMemory(m, ev)
	}
	require.Equal(t, n-1, m.ReferenceCount)

	// Exactly one batch, and one more than a batch.
	for _, size := range []int{eventstore.LoadBatch, eventstore.LoadBatch + 1} {
		id, last := appendCreated(t, s, domain.StatusActive)
		evs := make([]domain.Event, size-1)
		for i := range evs {
			evs[i] = memEvent(id, i+1, domain.MemoryReinforced{Delta: 0.001})
		}
		_, err := s.Append(ctx, last, evs...)
		require.NoError(t, err)
		got, gotLast, err := s.Load(ctx, "memory", id)
		require.NoError(t, err)
		require.Len(t, got, size)
		require.Equal(t, evs[len(evs)-1].Seq, gotLast)
		require.Equal(t, ids(evs), ids(got[1:]))
	}
}

func TestLastSeqOf(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	ctx := t.Context()

	last, err := s.LastSeqOf(ctx, "ledger.project.>")
	require.NoError(t, err)
	require.Zero(t, last, "empty stream")

	a, aSeq := appendCreated(t, s, domain.StatusActive)
	_, err = s.Append(ctx, 0, aggregateEvent("alpha", 1, domain.ProjectRegistered{Description: "alpha"}))
	require.NoError(t, err)
	b, bSeq := appendCreated(t, s, domain.StatusActive)
	_, err = s.Append(ctx, aSeq, memEvent(a, 1, domain.MemoryPromoted{}))
	require.NoError(t, err)

	tests := map[string]uint64{
		"ledger.memory." + a:      4,
		"ledger.memory." + b:      bSeq,
		"ledger.memory.>":         4,
		"ledger.memory.*":         4,
		"ledger.project.>":        2,
		"ledger.project.alpha":    2,
		"ledger.project.beta":     0,
		"ledger.state.>":          0,
		"ledger.>":                4,
		"ledger.memory." + a[:8]:  0,
		"ledger.memory.unknown-1": 0,
	}
	for filter, want := range tests {
		got, err := s.LastSeqOf(ctx, filter)
		require.NoError(t, err, filter)
		require.Equal(t, want, got, filter)
	}
}
