package eventstore_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// follow runs s.Follow from position from in a goroutine until the test ends or cancel is
// called; its error arrives on the returned channel.
func follow(t *testing.T, s *eventstore.Store, from uint64, out chan domain.Event) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc <- s.Follow(ctx, from, out)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cancel, errc
}

func TestFollow(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	ctx := t.Context()

	// Two memories, interleaved.
	a, aSeq := appendCreated(t, s, domain.StatusCandidate)
	b, bSeq := appendCreated(t, s, domain.StatusActive)
	first := []domain.Event{
		memEvent(a, 1, domain.MemoryReinforced{Delta: 0.1}),
		memEvent(a, 2, domain.MemoryPromoted{}),
	}
	_, err := s.Append(ctx, aSeq, first...)
	require.NoError(t, err)
	_, err = s.Append(ctx, bSeq, memEvent(b, 3, domain.MemoryInvalidated{}))
	require.NoError(t, err)

	out := make(chan domain.Event)
	cancel, errc := follow(t, s, 1, out)
	got := receive(t, out, 5)
	require.Equal(t, []uint64{1, 2, 3, 4, 5}, seqs(got))
	require.Equal(t, []string{a, b, a, a, b}, aggregateIDs(got))
	require.Equal(t, first[0], got[2])
	require.Equal(t, first[1], got[3])

	// Events appended later follow.
	later := []domain.Event{
		memEvent(b, 4, domain.MemoryReinforced{Delta: 0.1}),
		memEvent(b, 5, domain.MemoryReinforced{Delta: 0.1}),
	}
	_, err = s.Append(ctx, 5, later...)
	require.NoError(t, err)
	c, _ := appendCreated(t, s, domain.StatusActive)
	got = receive(t, out, 3)
	require.Equal(t, []uint64{6, 7, 8}, seqs(got))
	require.Equal(t, later, got[:2])
	require.Equal(t, c, got[2].AggregateID)
	require.IsType(t, domain.MemoryCreated{}, got[2].Data)

	cancel()
	require.ErrorIs(t, waitErr(t, errc), context.Canceled)
}

func TestFollowFrom(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	for range 5 {
		appendCreated(t, s, domain.StatusActive)
	}

	out := make(chan domain.Event, 10)
	follow(t, s, 3, out)
	require.Equal(t, []uint64{3, 4, 5}, seqs(receive(t, out, 3)))

	// From 0 is from the start; from past the end waits for the next event.
	out0 := make(chan domain.Event, 10)
	follow(t, s, 0, out0)
	require.Equal(t, []uint64{1, 2, 3, 4, 5}, seqs(receive(t, out0, 5)))
	outNext := make(chan domain.Event, 10)
	follow(t, s, 6, outNext)
	appendCreated(t, s, domain.StatusActive)
	require.Equal(t, []uint64{6}, seqs(receive(t, outNext, 1)))
	require.Equal(t, []uint64{6}, seqs(receive(t, out, 1)))
}

func TestFollowStopsWithContext(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)

	// Waiting for new events.
	appendCreated(t, s, domain.StatusActive)
	out := make(chan domain.Event, 1)
	cancel, errc := follow(t, s, 1, out)
	receive(t, out, 1)
	cancel()
	require.ErrorIs(t, waitErr(t, errc), context.Canceled)

	// Blocked on a reader that does not read.
	appendCreated(t, s, domain.StatusActive)
	unread := make(chan domain.Event)
	cancel, errc = follow(t, s, 1, unread)
	<-unread // it is running
	cancel()
	require.ErrorIs(t, waitErr(t, errc), context.Canceled)

	// Already done.
	ctx, cancelNow := context.WithCancel(t.Context())
	cancelNow()
	require.ErrorIs(t, s.Follow(ctx, 1, make(chan domain.Event)), context.Canceled)
}

// aggregateIDs are the aggregate ids of evs.
func aggregateIDs(evs []domain.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.AggregateID
	}
	return out
}

// A follow on a store whose connection is closed ends with an error at once, rather than make
// a new consumer again and again.
func TestFollowEndsOnAClosedConnection(t *testing.T) {
	s := eventstore.New(t.TempDir())
	require.NoError(t, s.Open(t.Context()))
	appendCreated(t, s, domain.StatusActive)
	require.NoError(t, s.Close())
	errc := make(chan error, 1)
	go func() { errc <- s.Follow(t.Context(), 1, make(chan domain.Event, 1)) }()
	err := waitErr(t, errc)
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
}
