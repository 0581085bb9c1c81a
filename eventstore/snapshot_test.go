package eventstore_test

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// messages reads every message of s's log.
func messages(t *testing.T, s *eventstore.Store) []eventstore.Message {
	t.Helper()
	var out []eventstore.Message
	require.NoError(t, s.Read(t.Context(), eventstore.ReadOptions{}, func(m eventstore.Message) error {
		out = append(out, m)
		return nil
	}))
	return out
}

func TestSnapshotRestore(t *testing.T) {
	src := openStore(t, eventstore.FsyncInterval)
	for range 50 {
		appendCreated(t, src, domain.StatusActive)
	}
	// Appends go on while the snapshot is taken: it holds a prefix of the log that includes
	// every append acknowledged before it began.
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			appendCreated(t, src, domain.StatusActive)
		}
	}()
	before := lastSeq(t, src)
	var buf bytes.Buffer
	snap, err := src.Snapshot(t.Context(), &buf)
	stop.Store(true)
	wg.Wait()
	require.NoError(t, err)
	require.GreaterOrEqual(t, snap.State.LastSeq, before)
	require.Equal(t, uint64(1), snap.State.FirstSeq)
	require.Equal(t, snap.State.LastSeq, snap.State.Msgs)
	require.NotEmpty(t, snap.Config)

	dst := eventstore.New(t.TempDir())
	dst.Fsync = eventstore.FsyncInterval
	require.NoError(t, dst.OpenRestore(t.Context(), snap, bytes.NewReader(buf.Bytes())))
	defer dst.Close()
	got := messages(t, dst)
	want := messages(t, src)[:snap.State.LastSeq]
	require.Equal(t, want, got)

	// It goes on after the restored log.
	_, seq := appendCreated(t, dst, domain.StatusActive)
	require.Equal(t, snap.State.LastSeq+1, seq)

	t.Run("into a log that exists", func(t *testing.T) {
		other := openStore(t, eventstore.FsyncInterval)
		other.Close()
		again := eventstore.New(other.Dir)
		err := again.OpenRestore(t.Context(), snap, bytes.NewReader(buf.Bytes()))
		require.ErrorContains(t, err, "already exists")
	})
	t.Run("a damaged snapshot", func(t *testing.T) {
		cut := eventstore.New(t.TempDir())
		err := cut.OpenRestore(t.Context(), snap, bytes.NewReader(buf.Bytes()[:buf.Len()/2]))
		require.Error(t, err)
		t.Log(err)
	})
}
