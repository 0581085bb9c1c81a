package eventstore_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

func TestAppendLoadRoundTrip(t *testing.T) {
	for _, fsync := range fsyncModes {
		t.Run("fsync="+fsync, func(t *testing.T) {
			s := openStore(t, fsync)
			ctx := t.Context()
			id := newMemoryID()
			other := newMemoryID()
			conf := 0.9
			until := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)

			evs := []domain.Event{
				memEvent(id, 0, createdPayload(domain.StatusCandidate)),
				memEvent(id, 1, domain.MemoryUpdated{
					Changed: []string{"content", "confidence", "domain_tags", "valid_until"},
					Content: "updated content", Confidence: conf,
					DomainTags: []string{"go"}, ValidUntil: &until,
				}),
				memEvent(id, 2, domain.MemoryReinforced{Delta: 0.05}),
				memEvent(id, 3, domain.MemoryPromoted{}),
				memEvent(id, 4, domain.MemorySuperseded{SupersededBy: other}),
			}
			// The first event's time is in another zone: the log keeps UTC.
			evs[0].Time = t0.In(time.FixedZone("CEST", 2*60*60))

			// An event of another memory before and between them: Load must skip it.
			_, err := s.Append(ctx, 0, memEvent(other, 0, createdPayload(domain.StatusActive)))
			require.NoError(t, err)
			res, err := s.Append(ctx, 0, evs[:2]...)
			require.NoError(t, err)
			require.Equal(t, eventstore.Appended{Seq: 3}, res)
			_, err = s.Append(ctx, 1, memEvent(other, 1, domain.MemoryReinforced{Delta: 0.1}))
			require.NoError(t, err)
			res, err = s.Append(ctx, 3, evs[2:]...)
			require.NoError(t, err)
			require.Equal(t, eventstore.Appended{Seq: 7}, res)
			require.Equal(t, []uint64{2, 3, 5, 6, 7}, seqs(evs), "Append sets each event's Seq")

			got, last, err := s.Load(ctx, "memory", id)
			require.NoError(t, err)
			require.Equal(t, uint64(7), last)
			require.Len(t, got, len(evs))

			require.Equal(t, time.UTC, got[0].Time.Location())
			require.True(t, got[0].Time.Equal(evs[0].Time))
			evs[0].Time = evs[0].Time.UTC()
			require.Equal(t, evs, got)

			// The payloads come back as the domain's types, with their values.
			require.IsType(t, domain.MemoryCreated{}, got[0].Data)
			require.Equal(t, realisticContent, got[0].Data.(domain.MemoryCreated).Content)
			require.IsType(t, domain.MemoryUpdated{}, got[1].Data)
			require.Equal(t, conf, got[1].Data.(domain.MemoryUpdated).Confidence)
			require.IsType(t, domain.MemoryReinforced{}, got[2].Data)
			require.IsType(t, domain.MemoryPromoted{}, got[3].Data)
			require.Equal(t, domain.MemorySuperseded{SupersededBy: other}, got[4].Data)
			for _, ev := range got {
				require.Equal(t, time.UTC, ev.Time.Location())
				require.Equal(t, id, ev.AggregateID)
			}

			// The fold of the loaded events is the memory.
			var m domain.Memory
			for _, ev := range got {
				m = domain.ApplyMemory(m, ev)
			}
			require.Equal(t, domain.StatusSuperseded, m.Status)
			require.Equal(t, uint64(7), m.Seq)
			require.Equal(t, 1, m.ReferenceCount)

			otherEvs, otherLast, err := s.Load(ctx, "memory", other)
			require.NoError(t, err)
			require.Equal(t, []uint64{1, 4}, seqs(otherEvs))
			require.Equal(t, uint64(4), otherLast)
			require.Equal(t, uint64(7), lastSeq(t, s))
		})
	}
}

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

func TestAppendConflict(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	ctx := t.Context()
	id, seq := appendCreated(t, s, domain.StatusActive)

	// A second create of the same memory.
	_, err := s.Append(ctx, 0, memEvent(id, 1, createdPayload(domain.StatusActive)))
	require.ErrorIs(t, err, domain.ErrConflict)
	// JetStream's own error is kept inside.
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, jetstream.ErrorCode(10071), apiErr.ErrorCode)

	// An expected sequence ahead of the memory, and one of another subject.
	_, err = s.Append(ctx, seq+10, memEvent(id, 1, domain.MemoryReinforced{Delta: 0.1}))
	require.ErrorIs(t, err, domain.ErrConflict)
	_, other := appendCreated(t, s, domain.StatusActive)
	_, err = s.Append(ctx, other, memEvent(id, 1, domain.MemoryReinforced{Delta: 0.1}))
	require.ErrorIs(t, err, domain.ErrConflict)

	evs, last, err := s.Load(ctx, "memory", id)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, seq, last)
}

func TestAppendConcurrentWritersOneWins(t *testing.T) {
	s := openStore(t, eventstore.FsyncAlways)
	ctx := t.Context()
	id, seq := appendCreated(t, s, domain.StatusActive)
	before := lastSeq(t, s)

	const writers = 20
	errs := make([]error, writers)
	evs := make([]domain.Event, writers)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range writers {
		evs[i] = memEvent(id, i+1, domain.MemoryReinforced{Delta: 0.01})
		done.Go(func() {
			start.Wait()
			_, errs[i] = s.Append(ctx, seq, evs[i])
		})
	}
	start.Done()
	done.Wait()

	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "a second writer succeeded: %d and %d", winner, i)
			winner = i
			continue
		}
		require.ErrorIs(t, err, domain.ErrConflict, "writer %d", i)
	}
	require.NotEqual(t, -1, winner, "no writer succeeded")

	got, last, err := s.Load(ctx, "memory", id)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, evs[winner].ID, got[1].ID)
	require.Equal(t, before+1, last)
	require.Equal(t, before+1, lastSeq(t, s))
}

func TestAppendIdempotent(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	ctx := t.Context()
	id, seq := appendCreated(t, s, domain.StatusActive)

	ev := memEvent(id, 1, domain.MemoryReinforced{Delta: 0.1})
	first, err := s.Append(ctx, seq, ev)
	require.NoError(t, err)
	require.False(t, first.Duplicate)
	before := lastSeq(t, s)

	// The same event again, at the memory's current position: a duplicate, nothing written.
	again := ev
	again.Seq = 0
	res, err := s.Append(ctx, first.Seq, again)
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: first.Seq, Duplicate: true}, res)
	require.Equal(t, before, lastSeq(t, s))

	// The same event with the same expected sequence as the first time (an exact retry): it is
	// stored once. (Append answers a conflict here; see TestAppendExactRetryIsDuplicate.)
	_, err = s.Append(ctx, seq, ev)
	if err != nil {
		require.ErrorIs(t, err, domain.ErrConflict)
	}
	require.Equal(t, before, lastSeq(t, s))

	// A new memory's created event, retried at the new position.
	newID := newMemoryID()
	created := memEvent(newID, 0, createdPayload(domain.StatusCandidate))
	first, err = s.Append(ctx, 0, created)
	require.NoError(t, err)
	res, err = s.Append(ctx, first.Seq, created)
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: first.Seq, Duplicate: true}, res)

	evs, last, err := s.Load(ctx, "memory", id)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, seq+1, last)
	evs, _, err = s.Load(ctx, "memory", newID)
	require.NoError(t, err)
	require.Len(t, evs, 1)
}

// TestAppendExactRetryIsDuplicate is the idempotency contract for a retried Append with the
// same arguments: the server checks the expected subject sequence before the message id, so
// today the retry is refused as a conflict instead of answering the first result.
func TestAppendExactRetryIsDuplicate(t *testing.T) {
	t.Skip("known bug: an exact retry of Append is a conflict, not a duplicate (the server checks Nats-Expected-Last-Subject-Sequence before Nats-Msg-Id); see the eventstore test report")
	s := openStore(t, eventstore.FsyncInterval)
	ctx := t.Context()
	id := newMemoryID()
	ev := memEvent(id, 0, createdPayload(domain.StatusCandidate))
	first, err := s.Append(ctx, 0, ev)
	require.NoError(t, err)
	res, err := s.Append(ctx, 0, ev)
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: first.Seq, Duplicate: true}, res)
	require.Equal(t, first.Seq, lastSeq(t, s))
}

func TestAppendRefusesBadEvents(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	ctx := t.Context()

	for _, id := range []string{"", "a.b", "a*", "a>", "a b"} {
		_, err := s.Append(ctx, 0, memEvent(newMemoryID(), 0, domain.MemoryPromoted{}), domain.Event{
			ID: "x", Type: domain.EventMemoryPromoted, AggregateID: id, Data: domain.MemoryPromoted{},
		})
		require.ErrorIs(t, err, domain.ErrInvalid, "aggregate id %q", id)
	}

	// A payload that is not the event's type, and no payload.
	ev := memEvent(newMemoryID(), 0, domain.MemoryPromoted{})
	ev.Type = domain.EventMemoryRejected
	_, err := s.Append(ctx, 0, ev)
	require.Error(t, err)
	ev.Data = nil
	_, err = s.Append(ctx, 0, ev)
	require.Error(t, err)

	// Only the first, valid, event of the first call was written.
	require.Equal(t, uint64(5), lastSeq(t, s))
}

func TestSubject(t *testing.T) {
	subject, err := eventstore.Subject(memEvent("m-1", 0, domain.MemoryPromoted{}))
	require.NoError(t, err)
	require.Equal(t, "ledger.memory.m-1", subject)

	subject, err = eventstore.AggregateSubject("project", "p-1")
	require.NoError(t, err)
	require.Equal(t, "ledger.project.p-1", subject)

	_, err = eventstore.AggregateSubject("memory", "a.b")
	require.True(t, errors.Is(err, domain.ErrInvalid))
}
