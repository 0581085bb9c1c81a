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

func TestAppendUnchecked(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	ctx := t.Context()
	result := func(n int) domain.Event {
		return aggregateEvent("harness", n, domain.HarnessRecorded{PassRate: 0.9, Passed: 9, Total: 10})
	}

	// Facts appended whatever the aggregate's last event, each still stored once.
	first := result(0)
	res, err := s.Append(ctx, eventstore.Unchecked, first)
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: 1}, res)
	res, err = s.Append(ctx, eventstore.Unchecked, result(1), result(2))
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: 3}, res)
	res, err = s.Append(ctx, eventstore.Unchecked, first)
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: 1, Duplicate: true}, res)

	evs, last, err := s.Load(ctx, "system", "harness")
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3}, seqs(evs))
	require.Equal(t, uint64(3), last)
	require.Equal(t, domain.HarnessRecorded{PassRate: 0.9, Passed: 9, Total: 10}, evs[2].Data)
}

func TestAppendFor(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	ctx := t.Context()
	const projects = "ledger.project.>"
	project := func(id string, n int) domain.Event {
		return aggregateEvent(id, n, domain.ProjectRegistered{Aliases: []string{id + "-alias"}, Description: "project " + id})
	}
	appendCreated(t, s, domain.StatusActive) // not a project: outside the boundary

	// The first event of the boundary, then two more in one call.
	res, err := s.AppendFor(ctx, projects, 0, project("alpha", 0))
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: 2}, res)
	evs := []domain.Event{project("beta", 1), project("gamma", 2)}
	res, err = s.AppendFor(ctx, projects, 2, evs...)
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: 4}, res)
	require.Equal(t, []uint64{3, 4}, seqs(evs))

	// A decision on a stale view of the boundary is a conflict, whichever subject it writes.
	_, err = s.AppendFor(ctx, projects, 2, project("delta", 3))
	require.ErrorIs(t, err, domain.ErrConflict)
	_, err = s.AppendFor(ctx, projects, 0, project("alpha", 3))
	require.ErrorIs(t, err, domain.ErrConflict)

	// Events outside the boundary do not move it.
	appendCreated(t, s, domain.StatusActive)
	res, err = s.AppendFor(ctx, projects, 4, project("delta", 3))
	require.NoError(t, err)
	require.Equal(t, uint64(6), res.Seq)

	// An event appended again at the current position is a duplicate.
	again := evs[1]
	res, err = s.AppendFor(ctx, projects, 6, again)
	require.NoError(t, err)
	require.Equal(t, eventstore.Appended{Seq: 4, Duplicate: true}, res)
	require.Equal(t, uint64(6), lastSeq(t, s))
}
