package ledger

import (
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/eventstore/eventstoretest"
)

// decideWith returns a decide function carrying out cmd on memory id with the default rules
// and a new event id.
func decideWith(id string, cmd domain.Command) func(domain.Memory) ([]domain.Event, error) {
	meta := domain.Meta{EventID: uuid.NewString(), Actor: "test-actor", Time: eventstoretest.T0}
	return func(m domain.Memory) ([]domain.Event, error) {
		return domain.DefaultRules().Decide(m, id, cmd, meta)
	}
}

func TestUpdateMemory(t *testing.T) {
	s := eventstoretest.Open(t, eventstore.FsyncInterval)
	ctx := t.Context()
	id := eventstoretest.NewMemoryID()

	m, res, err := updateMemory(ctx, s, id, updateOptions{New: true}, decideWith(id, domain.CreateMemory{
		MemoryType: "knowledge", Content: eventstoretest.RealisticContent, Status: "candidate",
	}))
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: 1}, res)
	require.Equal(t, id, m.ID)
	require.Equal(t, domain.StatusCandidate, m.Status)
	require.Equal(t, uint64(1), m.Seq)

	version := m.Seq
	m, res, err = updateMemory(ctx, s, id, updateOptions{IfMatch: &version}, decideWith(id, domain.PromoteMemory{}))
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: 2}, res)
	require.Equal(t, domain.StatusActive, m.Status)
	require.Equal(t, uint64(2), m.Seq)

	// The returned state is the fold of the log.
	evs, _, err := s.Load(ctx, "memory", id)
	require.NoError(t, err)
	var folded domain.Memory
	for _, ev := range evs {
		folded = domain.ApplyMemory(folded, ev)
	}
	require.Equal(t, folded, m)

	// A command that changes nothing writes nothing and answers the current version.
	same := eventstoretest.RealisticContent
	m2, res, err := updateMemory(ctx, s, id, updateOptions{}, decideWith(id, domain.UpdateMemory{Content: &same}))
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: 2}, res)
	require.Equal(t, m, m2)

	// The decision's refusal is returned as it is.
	_, _, err = updateMemory(ctx, s, id, updateOptions{}, decideWith(id, domain.PromoteMemory{}))
	var te *domain.TransitionError
	require.ErrorAs(t, err, &te)
	_, _, err = updateMemory(ctx, s, eventstoretest.NewMemoryID(), updateOptions{}, decideWith(id, domain.PromoteMemory{}))
	require.ErrorIs(t, err, domain.ErrNotFound)

	// New on an id that exists is a conflict, not a retry.
	calls := 0
	_, _, err = updateMemory(ctx, s, id, updateOptions{New: true}, func(m domain.Memory) ([]domain.Event, error) {
		calls++
		return decideWith(id, domain.CreateMemory{MemoryType: "knowledge", Content: "again"})(m)
	})
	require.ErrorIs(t, err, domain.ErrConflict)
	require.Equal(t, 1, calls)
	require.Equal(t, uint64(2), eventstoretest.LastSeq(t, s))

	// A bad id is refused before any read.
	_, _, err = updateMemory(ctx, s, "a.b", updateOptions{}, decideWith("a.b", domain.PromoteMemory{}))
	require.ErrorIs(t, err, domain.ErrInvalid)
}

func TestUpdateMemoryStaleIfMatch(t *testing.T) {
	s := eventstoretest.Open(t, eventstore.FsyncInterval)
	ctx := t.Context()
	id, seq := eventstoretest.AppendCreated(t, s, domain.StatusCandidate)
	_, err := s.Append(ctx, seq, eventstoretest.MemEvent(id, 1, domain.MemoryReinforced{Delta: 0.1}))
	require.NoError(t, err)
	before := eventstoretest.LastSeq(t, s)

	called := false
	_, _, err = updateMemory(ctx, s, id, updateOptions{IfMatch: &seq}, func(domain.Memory) ([]domain.Event, error) {
		called = true
		return nil, nil
	})
	require.ErrorIs(t, err, domain.ErrPrecondition)
	require.NotErrorIs(t, err, domain.ErrConflict)
	require.False(t, called, "decide runs only on the version the caller saw")

	// A version of a memory that does not exist.
	one := uint64(1)
	_, _, err = updateMemory(ctx, s, eventstoretest.NewMemoryID(), updateOptions{IfMatch: &one}, decideWith(id, domain.PromoteMemory{}))
	require.ErrorIs(t, err, domain.ErrPrecondition)
	require.Equal(t, before, eventstoretest.LastSeq(t, s))
}

func TestUpdateMemoryRetriesAConcurrentChange(t *testing.T) {
	s := eventstoretest.Open(t, eventstore.FsyncInterval)
	ctx := t.Context()
	id, _ := eventstoretest.AppendCreated(t, s, domain.StatusActive)

	// decide appends another writer's event before returning, once.
	calls := 0
	decide := func(m domain.Memory) ([]domain.Event, error) {
		calls++
		if calls == 1 {
			_, err := s.Append(ctx, m.Seq, eventstoretest.MemEvent(id, 1, domain.MemoryReinforced{Delta: 0.1}))
			require.NoError(t, err)
		}
		return decideWith(id, domain.ReinforceMemory{Delta: 0.2})(m)
	}
	m, res, err := updateMemory(ctx, s, id, updateOptions{}, decide)
	require.NoError(t, err)
	require.Equal(t, 2, calls)
	require.Equal(t, uint64(3), res.Seq)
	require.Equal(t, 2, m.ReferenceCount, "decided on the state with the other writer's event")
	require.InDelta(t, 0.9, m.Confidence, 1e-9)

	// Under IfMatch, a change between the read and the append is a conflict, not a retry.
	calls = 0
	version := m.Seq
	_, _, err = updateMemory(ctx, s, id, updateOptions{IfMatch: &version}, decide)
	require.ErrorIs(t, err, domain.ErrConflict)
	require.NotErrorIs(t, err, domain.ErrPrecondition)
	require.Equal(t, 1, calls)

	// A writer that always gets in first: Update gives up after its retries.
	calls = 0
	always := func(m domain.Memory) ([]domain.Event, error) {
		calls++
		_, err := s.Append(ctx, m.Seq, eventstoretest.MemEvent(id, 10+calls, domain.MemoryReinforced{Delta: 0.01}))
		require.NoError(t, err)
		return decideWith(id, domain.ReinforceMemory{})(m)
	}
	_, _, err = updateMemory(ctx, s, id, updateOptions{}, always)
	require.ErrorIs(t, err, domain.ErrConflict)
	require.Equal(t, maxRetries+1, calls)
}

func TestUpdateMemoryRace(t *testing.T) {
	for _, conditional := range []bool{true, false} {
		name := "if-match"
		if !conditional {
			name = "unconditional"
		}
		t.Run(name, func(t *testing.T) {
			s := eventstoretest.Open(t, eventstore.FsyncAlways)
			ctx := t.Context()
			id, version := eventstoretest.AppendCreated(t, s, domain.StatusCandidate)

			const writers = 20
			errs := make([]error, writers)
			var start, done sync.WaitGroup
			start.Add(1)
			for i := range writers {
				opts := updateOptions{}
				if conditional {
					opts.IfMatch = &version
				}
				decide := decideWith(id, domain.PromoteMemory{})
				done.Go(func() {
					start.Wait()
					_, _, errs[i] = updateMemory(ctx, s, id, opts, decide)
				})
			}
			start.Done()
			done.Wait()

			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case conditional:
					// Read after the winner's append, or between its read and its append.
					require.True(t, errorsIsAny(err, domain.ErrPrecondition, domain.ErrConflict), "writer %d: %v", i, err)
				default:
					// The winner's promotion makes the others' promotions a refused transition.
					require.ErrorIs(t, err, domain.ErrConflict, "writer %d", i)
				}
			}
			require.Equal(t, 1, wins)

			evs, last, err := s.Load(ctx, "memory", id)
			require.NoError(t, err)
			require.Len(t, evs, 2)
			require.IsType(t, domain.MemoryPromoted{}, evs[1].Data)
			require.Equal(t, version+1, last)
		})
	}
}

// TestUpdateMemoryDuplicateState is the contract for a retried command whose event the log
// already holds: the answer is the state of the log, with the event applied once.
func TestUpdateMemoryDuplicateState(t *testing.T) {
	s := eventstoretest.Open(t, eventstore.FsyncInterval)
	ctx := t.Context()
	id, _ := eventstoretest.AppendCreated(t, s, domain.StatusActive)
	decide := decideWith(id, domain.ReinforceMemory{Delta: 0.1}) // one event id for both calls

	first, res1, err := updateMemory(ctx, s, id, updateOptions{}, decide)
	require.NoError(t, err)
	again, res2, err := updateMemory(ctx, s, id, updateOptions{}, decide)
	require.NoError(t, err)
	require.True(t, res2.Duplicate)
	require.Equal(t, res1.Seq, res2.Seq)
	require.Equal(t, first, again)
}

func errorsIsAny(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
