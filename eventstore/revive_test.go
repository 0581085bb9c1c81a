package eventstore_test

import (
	"bytes"
	"log/slog"
	"sync"
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
	var logs lockedBuffer
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	before, _ := appendCreated(t, s, domain.StatusActive)

	require.NoError(t, s.EmbeddedServer().ShutdownJetStream())
	// The store saw it off (it says so) and restarted it: not merely never noticed.
	require.Eventually(t, func() bool {
		return bytes.Contains(logs.Bytes(), []byte("JetStream restarted in the process")) &&
			s.EmbeddedServer().JetStreamEnabled() && s.Broken() == nil
	}, 30*time.Second, 10*time.Millisecond, "JetStream is restarted; log:\n%s", logs.Bytes())
	require.Contains(t, string(logs.Bytes()), "the embedded server cannot write the log", "the switch-off was noticed and logged")
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

// lockedBuffer is a bytes.Buffer a logger writes to while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of what was written.
func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
