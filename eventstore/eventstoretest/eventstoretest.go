// Package eventstoretest provides what tests of the log and of the packages above it share:
// a store on an embedded server in a temporary directory and events to put in it, as
// net/http/httptest does for HTTP.
package eventstoretest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// T0 is the time of the first event the tests write; later events are a second apart.
var T0 = time.Date(2026, 4, 1, 8, 30, 0, 123456789, time.UTC)

// RealisticContent is about 200 characters, the size of a typical memory.
var RealisticContent = strings.Repeat("The ledger keeps every change as an immutable event; ", 4)[:200]

// Open opens a store with an embedded server in a fresh temporary directory and closes it
// when the test ends.
func Open(tb testing.TB, fsync string) *eventstore.Store {
	tb.Helper()
	return OpenAt(tb, tb.TempDir(), fsync)
}

// OpenAt opens a store on dir and closes it when the test ends (closing twice is fine).
func OpenAt(tb testing.TB, dir, fsync string) *eventstore.Store {
	tb.Helper()
	s := eventstore.New(dir)
	s.Fsync = fsync
	require.NoError(tb, s.Open(tb.Context()))
	tb.Cleanup(func() { s.Close() })
	return s
}

// StartServer starts a NATS server with JetStream on loopback, as the external server that the
// stores of several memledger instances share, and stops it when the test ends (after
// whatever was opened on it later, whose cleanups run first). It returns the server's URL.
func StartServer(tb testing.TB) string {
	tb.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: tb.TempDir(), NoSigs: true, NoLog: true})
	require.NoError(tb, err)
	go srv.Start()
	require.True(tb, srv.ReadyForConnections(10*time.Second), "the NATS server is not ready")
	tb.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv.ClientURL()
}

// NewMemoryID returns a fresh memory id, a valid subject token.
func NewMemoryID() string { return uuid.NewString() }

// MemEvent builds an event of memory id with a new event id, at T0 plus n seconds.
func MemEvent(id string, n int, p domain.Payload) domain.Event {
	return domain.NewEvent(id, domain.Meta{
		EventID:       uuid.NewString(),
		Actor:         "test-actor",
		Note:          fmt.Sprintf("event %d", n),
		CorrelationID: "corr-" + id,
		Time:          T0.Add(time.Duration(n) * time.Second),
	}, p)
}

// CreatedPayload is a memory.created payload with every field set.
func CreatedPayload(status domain.Status) domain.MemoryCreated {
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	return domain.MemoryCreated{
		MemoryType:    domain.TypeKnowledge,
		Content:       RealisticContent,
		Project:       "memledger",
		Status:        status,
		Confidence:    0.6,
		SourceChunkID: "chunk-17",
		DomainTags:    []string{"go", "nats"},
		ValidUntil:    &until,
	}
}

// AppendCreated appends a memory.created event for a new memory and returns its id and log
// position.
func AppendCreated(t testing.TB, s *eventstore.Store, status domain.Status) (string, uint64) {
	t.Helper()
	id := NewMemoryID()
	res, err := s.Append(t.Context(), 0, MemEvent(id, 0, CreatedPayload(status)))
	require.NoError(t, err)
	require.False(t, res.Duplicate)
	return id, res.Seq
}

// LastSeq is the stream's last sequence.
func LastSeq(t testing.TB, s *eventstore.Store) uint64 {
	t.Helper()
	seq, err := s.LastSeq(t.Context())
	require.NoError(t, err)
	return seq
}
