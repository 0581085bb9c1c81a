package eventstore_test

import (
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/stretchr/testify/require"
)

// When the embedded server switches JetStream off (it does on some out-of-space and
// permission failures), appends are refused at once with a reason, and the store restarts
// JetStream in the process as soon as the disk has room: the log takes appends again and
// holds what it held.
func TestStoreRestartsJetStreamSwitchedOff(t *testing.T) {
	s := eventstore.New(t.TempDir())
	s.ReviveInterval = 20 * time.Millisecond
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	before, _ := appendCreated(t, s, domain.StatusActive)

	require.NoError(t, s.EmbeddedServer().ShutdownJetStream())
	require.Eventually(t, func() bool { return !s.EmbeddedServer().JetStreamEnabled() || s.Broken() != nil }, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return s.EmbeddedServer().JetStreamEnabled() && s.Broken() == nil }, 30*time.Second, 10*time.Millisecond,
		"JetStream is restarted")
	after, seq := appendCreated(t, s, domain.StatusActive)
	require.Equal(t, uint64(2), seq)
	for _, id := range []string{before, after} {
		evs, _, err := s.Load(t.Context(), domain.KindMemory, id)
		require.NoError(t, err)
		require.Len(t, evs, 1)
	}
}

// While the disk has less room than the store waits for, JetStream stays off and every append
// is refused at once as unavailable (a 503 that says a retry is safe), counted as a failure
// of the log.
func TestStoreRefusesAppendsUntilJetStreamIsBack(t *testing.T) {
	s := eventstore.New(t.TempDir())
	s.ReviveInterval = 20 * time.Millisecond
	s.ReviveFree = 1 << 62 // more than any disk here has
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	appendCreated(t, s, domain.StatusActive)

	require.NoError(t, s.EmbeddedServer().ShutdownJetStream())
	require.Eventually(t, func() bool { return s.Broken() != nil }, 10*time.Second, 5*time.Millisecond)
	id := newMemoryID()
	_, err := s.Append(t.Context(), eventstore.Unchecked, memEvent(id, 1, createdPayload(domain.StatusActive)))
	require.ErrorIs(t, err, domain.ErrUnavailable)
	require.ErrorContains(t, err, "switched JetStream off")
	require.ErrorContains(t, err, "Idempotency-Key")
	failure, _ := s.AppendFailure()
	require.Error(t, failure)
	require.False(t, s.EmbeddedServer().JetStreamEnabled(), "not restarted without room")
}
