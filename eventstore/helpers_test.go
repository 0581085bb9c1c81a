package eventstore_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// fsyncModes are the embedded server's two durability settings.
var fsyncModes = []string{eventstore.FsyncAlways, eventstore.FsyncInterval}

// t0 is the time of the first event the tests write; later events are a second apart.
var t0 = time.Date(2026, 4, 1, 8, 30, 0, 123456789, time.UTC)

// openStore opens a store with an embedded server in a fresh temporary directory and closes it
// when the test ends.
func openStore(tb testing.TB, fsync string) *eventstore.Store {
	tb.Helper()
	return openStoreAt(tb, tb.TempDir(), fsync)
}

// openStoreAt opens a store on dir and closes it when the test ends (closing twice is fine).
func openStoreAt(tb testing.TB, dir, fsync string) *eventstore.Store {
	tb.Helper()
	s := eventstore.New(dir)
	s.Fsync = fsync
	require.NoError(tb, s.Open(tb.Context()))
	tb.Cleanup(func() { s.Close() })
	return s
}

// newMemoryID returns a fresh memory id, a valid subject token.
func newMemoryID() string { return uuid.NewString() }

// memEvent builds an event of memory id with a new event id, at t0 plus n seconds.
func memEvent(id string, n int, p domain.Payload) domain.Event {
	return domain.NewEvent(id, domain.Meta{
		EventID:       uuid.NewString(),
		Actor:         "test-actor",
		Note:          fmt.Sprintf("event %d", n),
		CorrelationID: "corr-" + id,
		Time:          t0.Add(time.Duration(n) * time.Second),
	}, p)
}

// realisticContent is about 200 characters, the size of a typical memory.
var realisticContent = strings.Repeat("The ledger keeps every change as an immutable event; ", 4)[:200]

// createdPayload is a memory.created payload with every field set.
func createdPayload(status domain.Status) domain.MemoryCreated {
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	return domain.MemoryCreated{
		MemoryType:    domain.TypeKnowledge,
		Content:       realisticContent,
		Project:       "memledger",
		Status:        status,
		Confidence:    0.6,
		SourceChunkID: "chunk-17",
		DomainTags:    []string{"go", "nats"},
		ValidUntil:    &until,
	}
}

// appendCreated appends a memory.created event for a new memory and returns its id and log
// position.
func appendCreated(t testing.TB, s *eventstore.Store, status domain.Status) (string, uint64) {
	t.Helper()
	id := newMemoryID()
	res, err := s.Append(t.Context(), 0, memEvent(id, 0, createdPayload(status)))
	require.NoError(t, err)
	require.False(t, res.Duplicate)
	return id, res.Seq
}

// lastSeq is the stream's last sequence.
func lastSeq(t testing.TB, s *eventstore.Store) uint64 {
	t.Helper()
	seq, err := s.LastSeq(t.Context())
	require.NoError(t, err)
	return seq
}

// receive reads n events from ch, failing the test if they do not arrive within 10 s.
func receive(t *testing.T, ch <-chan domain.Event, n int) []domain.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	evs := make([]domain.Event, 0, n)
	for len(evs) < n {
		select {
		case ev := <-ch:
			evs = append(evs, ev)
		case <-timeout:
			require.FailNowf(t, "follow", "received %d of %d events within 10s", len(evs), n)
		}
	}
	return evs
}

// waitErr returns the error sent on errc, failing the test if none arrives within 10 s.
func waitErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no error within 10s")
		return nil
	}
}

// seqs are the log positions of evs.
func seqs(evs []domain.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

// ids are the event ids of evs.
func ids(evs []domain.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// aggregateEvent builds an event of aggregate id, without note or correlation id, at t0 plus n
// seconds.
func aggregateEvent(id string, n int, p domain.Payload) domain.Event {
	return domain.NewEvent(id, domain.Meta{
		EventID: uuid.NewString(),
		Actor:   "test-actor",
		Time:    t0.Add(time.Duration(n) * time.Second),
	}, p)
}
