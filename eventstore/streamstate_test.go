package eventstore_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// streamMsgs is the message directory of the log's stream in the embedded server's store.
func streamMsgs(dir string) string {
	return filepath.Join(dir, "nats", "jetstream", "$G", "streams", eventstore.DefaultStream, "msgs")
}

// openLogged opens a store on dir that logs into the buffer it returns.
func openLogged(t *testing.T, dir string) (*eventstore.Store, *bytes.Buffer) {
	t.Helper()
	var logged bytes.Buffer
	s := eventstore.New(dir)
	s.Fsync = eventstore.FsyncInterval
	s.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	return s, &logged
}

// A clean stop leaves the stream's state file as the server's own check at its start would
// take it; a state file written before the last events (as a crash leaves it) is judged
// outdated, removed before the server starts, and the log holds every event all the same. A
// state file that cannot be judged is left to the server, and so is a missing one.
func TestStartDropsAnOutdatedStreamState(t *testing.T) {
	dir := t.TempDir()
	msgs := streamMsgs(dir)
	state := filepath.Join(msgs, "index.db")

	s := openStoreAt(t, dir, eventstore.FsyncInterval)
	var ids []string
	for range 20 {
		id, _ := appendCreated(t, s, domain.StatusActive)
		ids = append(ids, id)
	}
	require.NoError(t, s.Close())
	outdated, err := eventstore.StreamStateOutdated(msgs)
	require.NoError(t, err)
	require.False(t, outdated, "a clean stop's state file is current")
	early, err := os.ReadFile(state)
	require.NoError(t, err)

	s = openStoreAt(t, dir, eventstore.FsyncInterval)
	for range 30 {
		id, _ := appendCreated(t, s, domain.StatusActive)
		ids = append(ids, id)
	}
	require.NoError(t, s.Close())
	current, err := os.ReadFile(state)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(state, early, 0o600))
	outdated, err = eventstore.StreamStateOutdated(msgs)
	require.NoError(t, err)
	require.True(t, outdated, "a state file written before the last 30 events is outdated")

	s, logged := openLogged(t, dir)
	require.Contains(t, logged.String(), "the stream's saved state is older than its last block")
	require.Equal(t, uint64(50), lastSeq(t, s))
	for _, id := range ids {
		evs, _, err := s.Load(t.Context(), domain.KindMemory, id)
		require.NoError(t, err)
		require.Len(t, evs, 1, id)
	}
	require.NoError(t, s.Close())

	// Cut short, it cannot be judged: left to the server, which rebuilds from the blocks.
	require.NoError(t, os.WriteFile(state, current[:10], 0o600))
	_, err = eventstore.StreamStateOutdated(msgs)
	require.ErrorContains(t, err, "fewer than")
	s = openStoreAt(t, dir, eventstore.FsyncInterval)
	require.Equal(t, uint64(50), lastSeq(t, s))
	require.NoError(t, s.Close())

	require.NoError(t, os.Remove(state))
	outdated, err = eventstore.StreamStateOutdated(msgs)
	require.NoError(t, err)
	require.False(t, outdated)
}

// A state file that remembers positions the last block lost (its tail cut off) is left to the
// server, which keeps the stream's last position past them: a position is never used twice.
func TestStartKeepsAStreamStateThatRemembersLostPositions(t *testing.T) {
	dir := t.TempDir()
	msgs := streamMsgs(dir)
	s := openStoreAt(t, dir, eventstore.FsyncInterval)
	for range 50 {
		appendCreated(t, s, domain.StatusActive)
	}
	require.NoError(t, s.Close())
	blocks, err := filepath.Glob(filepath.Join(msgs, "*.blk"))
	require.NoError(t, err)
	require.Len(t, blocks, 1)
	fi, err := os.Stat(blocks[0])
	require.NoError(t, err)
	require.NoError(t, os.Truncate(blocks[0], fi.Size()*2/3))
	outdated, err := eventstore.StreamStateOutdated(msgs)
	require.NoError(t, err)
	require.False(t, outdated, "the state file names positions the block lost")

	s, logged := openLogged(t, dir)
	require.NotContains(t, logged.String(), "saved state is older")
	require.Equal(t, uint64(50), lastSeq(t, s), "the stream's last position stays past the lost events")
	_, seq := appendCreated(t, s, domain.StatusActive)
	require.Equal(t, uint64(51), seq)
}
