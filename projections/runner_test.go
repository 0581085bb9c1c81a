package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// t0 is the time of the first event the tests write; later events are a second apart.
var t0 = time.Date(2026, 4, 1, 8, 30, 0, 0, time.UTC)

// waitTimeout bounds every wait of a test for the runner.
const waitTimeout = 10 * time.Second

// realisticContent is about 200 characters, the size of a typical memory.
var realisticContent = strings.Repeat("The ledger keeps every change as an immutable event; ", 4)[:200]

// openStore opens a store with an embedded server on dir and closes it when the test ends
// (closing twice is fine).
func openStore(tb testing.TB, dir, fsync string) *eventstore.Store {
	tb.Helper()
	s := eventstore.New(dir)
	s.Fsync = fsync
	s.Logger = slog.New(slog.DiscardHandler)
	require.NoError(tb, s.Open(context.Background()))
	tb.Cleanup(func() { s.Close() })
	return s
}

// openDB opens the projection file at path; when the test ends it checks bbolt's invariants
// on the file and closes it, unless the test closed it already.
func openDB(tb testing.TB, path string) *projections.DB {
	tb.Helper()
	db, err := projections.Open(path, true)
	require.NoError(tb, err)
	cleanupDB(tb, db)
	return db
}

// cleanupDB checks and closes db when the test ends, unless the test closed it already.
func cleanupDB(tb testing.TB, db *projections.DB) {
	tb.Cleanup(func() {
		checkDB(tb, db)
		db.Close()
	})
}

// checkDB runs bbolt's consistency check on db (a closed db passes: it was checked when the
// test closed it with closeDB).
func checkDB(tb testing.TB, db *projections.DB) {
	tb.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return
	}
	require.NoError(tb, err, "bbolt check of %s", db.Path)
}

// closeDB checks db's invariants and closes it.
func closeDB(tb testing.TB, db *projections.DB) {
	tb.Helper()
	checkDB(tb, db)
	require.NoError(tb, db.Close())
}

// ledgerLog appends memory events to a store and keeps a model of what the projections must
// show: each memory folded from its events, and every event with its log position.
type ledgerLog struct {
	tb    testing.TB
	store *eventstore.Store
	// Actor is the actor of the next events.
	Actor  string
	mems   map[string]domain.Memory
	ids    []string // memory ids in creation order
	events []domain.Event
}

func newLedgerLog(tb testing.TB, store *eventstore.Store) *ledgerLog {
	return &ledgerLog{tb: tb, store: store, Actor: "tester", mems: map[string]domain.Memory{}}
}

// append appends one event of memory id with the memory's last position as the expected one,
// folds it into the model and returns it with its position.
func (l *ledgerLog) append(id string, p domain.Payload) domain.Event {
	l.tb.Helper()
	n := len(l.events) + 1
	ev := domain.NewEvent(id, domain.Meta{
		EventID:       uuid.NewString(),
		Actor:         l.Actor,
		Note:          fmt.Sprintf("event %d", n),
		CorrelationID: "corr-" + id,
		Time:          t0.Add(time.Duration(n) * time.Second),
	}, p)
	res, err := l.store.Append(context.Background(), l.mems[id].Seq, ev)
	require.NoError(l.tb, err)
	require.False(l.tb, res.Duplicate)
	ev.Seq = res.Seq
	l.mems[id] = domain.ApplyMemory(l.mems[id], ev)
	l.events = append(l.events, ev)
	return ev
}

// create appends the creation of a new memory and returns its id.
func (l *ledgerLog) create(status domain.Status, typ domain.MemoryType, project string) string {
	l.tb.Helper()
	id := uuid.NewString()
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	l.append(id, domain.MemoryCreated{
		MemoryType: typ, Content: realisticContent, Project: project, Status: status,
		Confidence: 0.6, SourceChunkID: "chunk-17", DomainTags: []string{"go", "nats"}, ValidUntil: &until,
	})
	l.ids = append(l.ids, id)
	return id
}

// last is the log position of the last event appended.
func (l *ledgerLog) last() uint64 {
	if len(l.events) == 0 {
		return 0
	}
	return l.events[len(l.events)-1].Seq
}

// actions is the audit action of each event of the log.
func (l *ledgerLog) actions() []domain.Action {
	out := make([]domain.Action, len(l.events))
	state := map[string]domain.Memory{}
	for i, ev := range l.events {
		out[i] = domain.AuditAction(state[ev.AggregateID], ev)
		state[ev.AggregateID] = domain.ApplyMemory(state[ev.AggregateID], ev)
	}
	return out
}

// newRunner returns a runner of ps over src into db, logging nowhere.
func newRunner(db *projections.DB, src projections.Source, ps ...projections.Projection) *projections.Runner {
	return &projections.Runner{DB: db, Source: src, Projections: ps, Logger: slog.New(slog.DiscardHandler)}
}

// runUntil initialises r and runs it until it has applied position until.
func runUntil(tb testing.TB, r *projections.Runner, until uint64) {
	tb.Helper()
	require.NoError(tb, r.Init())
	r.Until = until
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(tb, r.Run(ctx))
	require.Equal(tb, until, r.Applied())
}

// startRunner initialises r and runs it in the background until the test ends.
func startRunner(tb testing.TB, r *projections.Runner) {
	tb.Helper()
	require.NoError(tb, r.Init())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.ErrorIs(tb, err, context.Canceled)
		case <-time.After(waitTimeout):
			tb.Errorf("the runner did not stop within %s", waitTimeout)
		}
	})
}

// waitFor waits until r has applied position seq.
func waitFor(tb testing.TB, r *projections.Runner, seq uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(tb, r.WaitFor(ctx, seq))
}

// counting is a projection that counts the events handed to its Apply.
type counting struct {
	projections.Projection
	applied atomic.Int64
}

func (c *counting) Apply(tx *bolt.Tx, ev domain.Event) error {
	c.applied.Add(1)
	return c.Projection.Apply(tx, ev)
}

// seqRecorder is a projection that records the position of every event it applies in its
// own bucket.
type seqRecorder struct{ name string }

func (s seqRecorder) Name() string { return s.name }

func (s seqRecorder) Init(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists([]byte(s.name))
	return err
}

func (s seqRecorder) Apply(tx *bolt.Tx, ev domain.Event) error {
	return tx.Bucket([]byte(s.name)).Put(fmt.Appendf(nil, "%020d", ev.Seq), []byte(ev.Type))
}

// recorded is the positions s recorded in db, in order.
func (s seqRecorder) recorded(tb testing.TB, db *projections.DB) []uint64 {
	tb.Helper()
	var out []uint64
	require.NoError(tb, db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(s.name)).ForEach(func(k, _ []byte) error {
			var seq uint64
			_, err := fmt.Sscanf(string(k), "%d", &seq)
			out = append(out, seq)
			return err
		})
	}))
	return out
}

var errBoom = errors.New("boom")

// failAt is a projection that fails on the event at position seq.
type failAt struct{ seq uint64 }

func (failAt) Name() string           { return "fail-at" }
func (failAt) Init(tx *bolt.Tx) error { return nil }

func (f failAt) Apply(_ *bolt.Tx, ev domain.Event) error {
	if ev.Seq == f.seq {
		return errBoom
	}
	return nil
}

// rewinding is a source that replays its log from the start whatever position it is asked
// for, as a source that lost its place would.
type rewinding struct{ projections.Source }

func (r rewinding) Follow(ctx context.Context, _ uint64, out chan<- domain.Event) error {
	return r.Source.Follow(ctx, 1, out)
}

// seqsTo is 1, 2, ..., n.
func seqsTo(n uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

// writeMixedLog appends n memories with a few changes each: creates, updates, reinforces,
// promotions, invalidations, by several actors.
func writeMixedLog(l *ledgerLog, n int) {
	types := []domain.MemoryType{domain.TypeKnowledge, domain.TypePreference, domain.TypeProject}
	projects := []string{"alpha", "beta", ""}
	for i := range n {
		status := domain.StatusActive
		if i%2 == 0 {
			status = domain.StatusCandidate
		}
		l.Actor = []string{"alice", "bob", "carol"}[i%3]
		id := l.create(status, types[i%len(types)], projects[i%len(projects)])
		l.append(id, domain.MemoryReinforced{Delta: 0.1})
		if status == domain.StatusCandidate {
			l.append(id, domain.MemoryPromoted{})
		}
		if i%4 == 1 {
			l.append(id, domain.MemoryUpdated{Changed: []string{"content"}, Content: fmt.Sprintf("changed %d", i)})
		}
		if i%5 == 0 {
			l.append(id, domain.MemoryInvalidated{})
		}
	}
}

// auditCount is the number of entries in the audit bucket.
func auditCount(tb testing.TB, db *projections.DB) int {
	tb.Helper()
	entries, err := db.RecentAudit(projections.AuditFilter{Limit: 1 << 30})
	require.NoError(tb, err)
	return len(entries)
}

// requireViewsMatch checks that every memory of the model is in db as the model has it and
// that the audit holds exactly one entry per event.
func requireViewsMatch(tb testing.TB, db *projections.DB, l *ledgerLog) {
	tb.Helper()
	for _, id := range l.ids {
		got, err := db.GetMemory(id)
		require.NoError(tb, err)
		require.NotNil(tb, got, "memory %s is missing", id)
		want, err := json.Marshal(l.mems[id])
		require.NoError(tb, err)
		require.JSONEq(tb, string(want), string(got), "memory %s", id)
	}
	require.Equal(tb, len(l.events), auditCount(tb, db))
	actions := l.actions()
	for i, ev := range l.events {
		data, err := db.AuditByEventID(ev.ID)
		require.NoError(tb, err)
		require.NotNil(tb, data, "no audit entry for event %s at %d", ev.ID, ev.Seq)
		var e projections.AuditEntry
		require.NoError(tb, json.Unmarshal(data, &e))
		require.Equal(tb, projections.AuditEntry{
			Seq: ev.Seq, EventID: ev.ID, MemoryID: ev.AggregateID, Action: actions[i],
			Actor: ev.Actor, Note: ev.Note, Timestamp: ev.Time, Before: e.Before, After: e.After,
			CorrelationID: ev.CorrelationID,
		}, e)
	}
}

func TestRunnerBatchWritesViewsAndCheckpointTogether(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	writeMixedLog(l, 40)
	db := openDB(t, filepath.Join(dir, "projections.db"))

	var progress []uint64
	r := newRunner(db, store, projections.Memories{})
	r.BatchSize = 7
	r.Progress = func(applied uint64) { progress = append(progress, applied) }
	runUntil(t, r, l.last())

	cps, err := db.Checkpoints()
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"memories": l.last()}, cps)
	requireViewsMatch(t, db, l)
	require.NoError(t, r.Err())
	require.NotEmpty(t, progress)
	require.Equal(t, l.last(), progress[len(progress)-1])
	for i := 1; i < len(progress); i++ {
		require.Greater(t, progress[i], progress[i-1], "progress %v", progress)
		require.LessOrEqual(t, progress[i]-progress[i-1], uint64(7), "a batch holds at most BatchSize events")
	}
}

func TestRunnerFailedBatchWritesNothing(t *testing.T) {
	for _, batchSize := range []int{1, 1000} {
		t.Run(fmt.Sprintf("batch=%d", batchSize), func(t *testing.T) {
			dir := t.TempDir()
			store := openStore(t, dir, eventstore.FsyncInterval)
			l := newLedgerLog(t, store)
			writeMixedLog(l, 20)
			fail := l.events[len(l.events)/2].Seq
			db := openDB(t, filepath.Join(dir, "projections.db"))

			// Memories applies the batch before failAt fails in the same transaction.
			r := newRunner(db, store, projections.Memories{}, failAt{seq: fail})
			r.BatchSize = batchSize
			require.NoError(t, r.Init())
			r.Until = l.last()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			err := r.Run(ctx)
			require.ErrorContains(t, err, errBoom.Error())
			require.ErrorContains(t, err, "projection fail-at: apply memory.", "the error names the projection")
			require.ErrorContains(t, err, fmt.Sprintf(" at %d: ", fail), "the error names the event's position")
			require.Equal(t, err, r.Err())

			cps, err := db.Checkpoints()
			require.NoError(t, err)
			require.Less(t, cps["memories"], fail)
			require.Equal(t, cps["memories"], cps["fail-at"])
			require.Equal(t, cps["memories"], r.Applied())
			if batchSize == 1 {
				require.Equal(t, fail-1, cps["memories"])
			}
			// Every event is a memory event: the audit holds exactly the events up to the
			// checkpoint, none of the failed batch.
			require.Equal(t, int(cps["memories"]), auditCount(t, db))
			for _, ev := range l.events {
				e, err := db.AuditByEventID(ev.ID)
				require.NoError(t, err)
				require.Equal(t, ev.Seq <= cps["memories"], e != nil, "audit of the event at %d", ev.Seq)
			}
		})
	}
}

func TestRunnerRestartResumesFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "projections.db")
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	writeMixedLog(l, 15)
	db := openDB(t, path)
	first := &counting{Projection: projections.Memories{}}
	runUntil(t, newRunner(db, store, first), l.last())
	require.Equal(t, int64(len(l.events)), first.applied.Load())
	closeDB(t, db)
	require.NoError(t, store.Close())

	// Restart both the log and the projections on the same files.
	store = openStore(t, dir, eventstore.FsyncInterval)
	l.store = store
	db = openDB(t, path)
	again := &counting{Projection: projections.Memories{}}
	r := newRunner(db, store, again)
	require.NoError(t, r.Init())
	require.Equal(t, l.last(), r.Applied(), "Init reads the checkpoint")
	runUntil(t, r, l.last())
	require.Zero(t, again.applied.Load(), "no new events: nothing is applied again")

	// Live, with 5 new events: exactly those 5 are applied.
	live := &counting{Projection: projections.Memories{}}
	r = newRunner(db, store, live)
	startRunner(t, r)
	id := l.create(domain.StatusCandidate, domain.TypeEpisodic, "gamma")
	l.append(id, domain.MemoryReinforced{Delta: 0.2})
	l.append(id, domain.MemoryPromoted{})
	l.append(l.ids[0], domain.MemoryUpdated{Changed: []string{"content"}, Content: "after restart"})
	l.append(l.ids[1], domain.MemoryReinforced{Delta: 0.05})
	waitFor(t, r, l.last())
	require.Equal(t, int64(5), live.applied.Load())
	requireViewsMatch(t, db, l)
	cps, err := db.Checkpoints()
	require.NoError(t, err)
	require.Equal(t, l.last(), cps["memories"])
}

func TestRunnerSkipsEventsAtOrBelowCheckpoint(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	writeMixedLog(l, 10)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	runUntil(t, newRunner(db, store, projections.Memories{}), l.last())
	applied := l.last()

	id := l.create(domain.StatusActive, domain.TypeIdentity, "")
	l.append(id, domain.MemoryReinforced{Delta: 0.1})
	l.append(id, domain.MemorySuperseded{SupersededBy: l.ids[0]})

	// A source that replays everything from position 1: the runner must skip what the
	// checkpoint says was applied.
	c := &counting{Projection: projections.Memories{}}
	runUntil(t, newRunner(db, rewinding{store}, c), l.last())
	require.Equal(t, int64(3), c.applied.Load())
	requireViewsMatch(t, db, l)

	rebuilt, err := projections.Build(context.Background(), filepath.Join(dir, "rebuilt.db"), store,
		[]projections.Projection{projections.Memories{}}, l.last(), nil)
	require.NoError(t, err)
	cleanupDB(t, rebuilt)
	diffs, err := projections.Diff(db, rebuilt, 10)
	require.NoError(t, err)
	require.Empty(t, diffs)
	require.Greater(t, l.last(), applied)
}

func TestRunnerNewProjectionCatchesUp(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	writeMixedLog(l, 12)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	runUntil(t, newRunner(db, store, projections.Memories{}), l.last())

	existing := &counting{Projection: projections.Memories{}}
	added := seqRecorder{name: "recorder"}
	r := newRunner(db, store, existing, added)
	r.BatchSize = 5
	require.NoError(t, r.Init())
	require.Zero(t, r.Applied(), "the runner starts from the lowest checkpoint")
	runUntil(t, r, l.last())

	require.Zero(t, existing.applied.Load(), "the existing projection skips what it applied")
	require.Equal(t, seqsTo(l.last()), added.recorded(t, db), "the new projection applies every event once")
	cps, err := db.Checkpoints()
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"memories": l.last(), "recorder": l.last()}, cps)
	requireViewsMatch(t, db, l)

	// Both go on together with new events.
	id := l.create(domain.StatusActive, domain.TypeKnowledge, "alpha")
	runUntil(t, newRunner(db, store, existing, added), l.last())
	require.Equal(t, int64(1), existing.applied.Load())
	require.Equal(t, seqsTo(l.last()), added.recorded(t, db))
	got, err := db.GetMemory(id)
	require.NoError(t, err)
	require.NotNil(t, got)
}

func TestRunnerWaitFor(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncAlways)
	l := newLedgerLog(t, store)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	r := newRunner(db, store, projections.Memories{})
	startRunner(t, r)

	// Waiters for positions not yet written are all released once they are applied.
	const waiters = 8
	errs := make(chan error, waiters)
	for i := range waiters {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			errs <- r.WaitFor(ctx, uint64(i+1))
		}()
	}
	for range waiters {
		l.create(domain.StatusActive, domain.TypePreference, "alpha")
	}
	for range waiters {
		require.NoError(t, <-errs)
	}

	// A write is visible once WaitFor returns for its position.
	id := l.create(domain.StatusCandidate, domain.TypeProject, "beta")
	waitFor(t, r, l.last())
	got, err := db.GetMemory(id)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.GreaterOrEqual(t, r.Applied(), l.last())

	// An applied position returns at once, even with a done context.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, r.WaitFor(done, l.last()))

	// A position never written: the context's error.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = r.WaitFor(ctx, l.last()+100)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, fmt.Sprintf("%d", l.last()+100))
	require.ErrorIs(t, r.WaitFor(done, l.last()+1), context.Canceled)
}

// requireBuildsLikeLive builds ps (made anew for each build) from src up to upTo in several
// ways and requires each file to hold what live holds, byte for byte: in one batch or in
// batches of one to three events, holding writes until the end, or flushing them whenever a
// byte or a few hundred bytes are held.
func requireBuildsLikeLive(t *testing.T, live *projections.DB, src projections.Source, ps func() []projections.Projection, upTo uint64) {
	t.Helper()
	dir := t.TempDir()
	for _, batch := range []int{0, 1, 2, 3} {
		for _, hold := range []int{0, 1, 300, 4000} {
			name := fmt.Sprintf("batches of %d, holding %d bytes", batch, hold)
			func() {
				if batch > 0 {
					defer projections.RebuildInBatchesOf(batch)()
				}
				if hold > 0 {
					defer projections.HoldAtMost(hold)()
				}
				rebuilt, err := projections.Build(context.Background(), filepath.Join(dir, fmt.Sprintf("b%d-h%d.db", batch, hold)),
					src, ps(), upTo, nil)
				require.NoError(t, err, name)
				defer rebuilt.Close()
				checkDB(t, rebuilt)
				diffs, err := projections.Diff(live, rebuilt, 10)
				require.NoError(t, err)
				require.Empty(t, diffs, name)
			}()
		}
	}
}
