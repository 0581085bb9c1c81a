package projections_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// gatedSource follows the log but delivers nothing until open is closed.
type gatedSource struct {
	store *eventstore.Store
	open  chan struct{}
}

func (g gatedSource) Follow(ctx context.Context, from uint64, out chan<- domain.Event) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.store.Follow(ctx, from, out)
}

// A runner applies the events offered by their writers without the log delivering them, in the
// log's order whatever the order of the offers, and each once when the log delivers them too:
// the file is then what a rebuild of the log makes.
func TestRunnerAppliesOfferedEventsInLogOrderOnce(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	gate := gatedSource{store: store, open: make(chan struct{})}
	r := newRunner(db, gate, projections.NewMemories(projections.DefaultStateCacheBytes))
	startRunner(t, r)

	// What the store hands over, offered in the reverse order: nothing applies until the
	// first event comes, then all of them in order.
	var stored []domain.Event
	store.Stored = func(ev domain.Event) { stored = append(stored, ev) }
	writeMixedLog(l, 10)
	store.Stored = nil
	require.Len(t, stored, len(l.events))
	for i, ev := range stored {
		require.Equal(t, l.events[i].Seq, ev.Seq)
	}
	for _, ev := range slices.Backward(stored[1:]) {
		r.Offer(ev)
		r.Offer(ev) // twice: a copy of a position held is passed over
	}
	require.Zero(t, r.Applied())
	r.Offer(stored[0])
	require.GreaterOrEqual(t, r.Applied(), stored[0].Seq, "the next event is applied by its offer")
	waitFor(t, r, l.last()) // the held ones by the runner
	requireViewsMatch(t, db, l)
	require.Equal(t, len(l.events), auditCount(t, db))

	// The log's delivery of the same events applies nothing twice; what comes after the
	// offers comes from the log alone.
	close(gate.open)
	writeMixedLog(l, 5)
	waitFor(t, r, l.last())
	requireViewsMatch(t, db, l)
	require.Equal(t, len(l.events), auditCount(t, db))

	// The store offers each event it writes; a mix of offers and the log's delivery.
	store.Stored = r.Offer
	writeMixedLog(l, 10)
	waitFor(t, r, l.last())
	requireViewsMatch(t, db, l)
	require.Equal(t, len(l.events), auditCount(t, db))
	rebuilt, err := projections.Build(context.Background(), filepath.Join(dir, "rebuilt.db"), store,
		[]projections.Projection{projections.Memories{}}, l.last(), nil)
	require.NoError(t, err)
	cleanupDB(t, rebuilt)
	diffs, err := projections.Diff(db, rebuilt, 10)
	require.NoError(t, err)
	require.Empty(t, diffs)
}

// A writer's own event, when every event before it is applied, is applied by its Offer before
// the append returns, without the runner (the log's delivery is held back here).
func TestRunnerAppliesTheNextOfferedEventInTheWritersGoroutine(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	gate := gatedSource{store: store, open: make(chan struct{})}
	r := newRunner(db, gate, projections.NewMemories(projections.DefaultStateCacheBytes))
	startRunner(t, r)
	store.Stored = r.Offer
	writeMixedLog(l, 5)
	require.Equal(t, l.last(), r.Applied(), "applied by the appends themselves")
	requireViewsMatch(t, db, l)
	require.Equal(t, len(l.events), auditCount(t, db))

	// The log's copies of the same events change nothing.
	close(gate.open)
	writeMixedLog(l, 5)
	waitFor(t, r, l.last())
	requireViewsMatch(t, db, l)
	require.Equal(t, len(l.events), auditCount(t, db))
	rebuilt, err := projections.Build(context.Background(), filepath.Join(dir, "rebuilt.db"), store,
		[]projections.Projection{projections.Memories{}}, l.last(), nil)
	require.NoError(t, err)
	cleanupDB(t, rebuilt)
	diffs, err := projections.Diff(db, rebuilt, 10)
	require.NoError(t, err)
	require.Empty(t, diffs)
}
