package projections_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
	requireAsRebuilt(t, db, store, l.last(), projections.Memories{})
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
	requireAsRebuilt(t, db, store, l.last(), projections.Memories{})
}

// A writer's own event counts as applied once it is written, before its transaction commits:
// the commit ends while the writer answers. A read of the memories begun meanwhile waits for
// it and sees the write; a read of the tokens, which that event cannot change, does not wait.
// A commit that fails takes the position back and fails the runner, which then applies the
// event from the log.
func TestAWritersOwnEventCountsAsAppliedBeforeItsCommitAndReadsWaitForIt(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	gate := gatedSource{store: store, open: make(chan struct{})}
	r := newRunner(db, gate, projections.NewMemories(projections.DefaultStateCacheBytes), projections.Tokens{})
	startRunner(t, r)
	commits := holdOwnCommits(t, r)
	store.Stored = r.Offer

	id := l.create(domain.StatusCandidate, domain.TypeProject, "p04")
	require.Equal(t, l.last(), r.Applied(), "counted as applied when the append returns")
	receive(t, commits.begun, "the commit of the writer's own event")
	read := make(chan []byte, 1)
	go func() {
		m, err := db.GetMemory(id)
		assert.NoError(t, err)
		read <- m
	}()
	tokens := make(chan error, 1)
	go func() {
		_, err := db.TokenByDigest("no-such-digest")
		tokens <- err
	}()
	select {
	case err := <-tokens:
		require.ErrorIs(t, err, domain.ErrNotFound)
	case <-time.After(waitTimeout):
		t.Fatal("a read of the tokens waited for the commit of a memory's event")
	}
	select {
	case m := <-read:
		t.Fatalf("a read of the memories did not wait for the commit under way: it read %v", m)
	case <-time.After(100 * time.Millisecond):
	}
	close(commits.release)
	select {
	case m := <-read:
		require.NotNil(t, m, "the read after the commit sees the memory")
		require.Contains(t, string(m), id)
	case <-time.After(waitTimeout):
		t.Fatal("the read did not end after the commit")
	}

	// A commit that fails.
	before := l.last()
	commits.hold.Store(false)
	commits.fail.Store(true)
	failed := l.create(domain.StatusActive, domain.TypeProject, "p04")
	receive(t, commits.begun, "the commit of the writer's own event")
	m, err := db.GetMemory(failed) // once the commit has ended
	require.NoError(t, err)
	require.Nil(t, m, "a failed commit wrote nothing")
	require.Equal(t, before, r.Applied(), "the position is taken back")
	failure, _ := r.Failure()
	require.ErrorContains(t, failure, "the disk went away")
	commits.fail.Store(false)
	close(gate.open)
	require.Eventually(t, func() bool {
		failure, _ := r.Failure()
		return failure == nil && r.Applied() == l.last()
	}, waitTimeout, 10*time.Millisecond, "written again from the log")
	requireViewsMatch(t, db, l)
	require.Equal(t, len(l.events), auditCount(t, db))

	// Later writes are the writers' own again, and the file is what a rebuild makes.
	writeMixedLog(l, 5)
	waitFor(t, r, l.last())
	requireViewsMatch(t, db, l)
	requireAsRebuilt(t, db, store, l.last(), projections.Memories{}, projections.Tokens{})
}

// receive waits for a value on c, failing the test after waitTimeout.
func receive[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not come within %s", what, waitTimeout)
		panic("unreachable")
	}
}

// failingSource follows the log; its first follow ends with an error when fail is closed, and
// each follow's start is sent on froms.
type failingSource struct {
	store *eventstore.Store
	fail  chan struct{}
	froms chan uint64
	calls atomic.Int32
}

func (f *failingSource) Follow(ctx context.Context, from uint64, out chan<- domain.Event) error {
	f.froms <- from
	if f.calls.Add(1) == 1 {
		select {
		case <-f.fail:
			return errors.New("reading the log failed")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.store.Follow(ctx, from, out)
}

// A follow that starts again while a writer's own event is being committed starts from what is
// committed: when that commit fails, the log delivers the event again and the runner applies
// it, instead of passing over it.
func TestAFollowStartedDuringAnOwnCommitReadsItAgainWhenTheCommitFails(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	src := &failingSource{store: store, fail: make(chan struct{}), froms: make(chan uint64, 8)}
	r := newRunner(db, src, projections.NewMemories(projections.DefaultStateCacheBytes))
	startRunner(t, r)
	commits := holdOwnCommits(t, r)
	commits.fail.Store(true)
	require.Equal(t, uint64(1), receive(t, src.froms, "the first follow"))
	store.Stored = r.Offer

	id := l.create(domain.StatusCandidate, domain.TypeProject, "p04")
	require.Equal(t, l.last(), r.Applied())
	receive(t, commits.begun, "the commit of the writer's own event")
	close(src.fail)
	require.Equal(t, uint64(1), receive(t, src.froms, "the follow started again"), "from the last position committed")
	close(commits.release)
	_, err := db.GetMemory(id) // once the commit has ended
	require.NoError(t, err)
	commits.fail.Store(false)
	require.Eventually(t, func() bool {
		failure, _ := r.Failure()
		return failure == nil && r.Applied() == l.last()
	}, waitTimeout, 10*time.Millisecond, "applied again from the log")
	m, err := db.GetMemory(id)
	require.NoError(t, err)
	require.NotNil(t, m)
	requireViewsMatch(t, db, l)
}

// A runner that stops while a writer's own event is being committed returns once that commit
// has ended, so that the file can be closed after it, and applies no writer's event after.
func TestARunnerStopsAfterTheOwnCommitUnderWay(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	gate := gatedSource{store: store, open: make(chan struct{})}
	r := newRunner(db, gate, projections.NewMemories(projections.DefaultStateCacheBytes))
	commits := holdOwnCommits(t, r)
	require.NoError(t, r.Init())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	store.Stored = r.Offer
	id := l.create(domain.StatusCandidate, domain.TypeProject, "p04")
	receive(t, commits.begun, "the commit of the writer's own event")
	cancel()
	select {
	case err := <-done:
		close(commits.release)
		t.Fatalf("the runner returned (%v) while an own commit was under way", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(commits.release)
	require.ErrorIs(t, receive(t, done, "the runner's return"), context.Canceled)
	m, err := db.GetMemory(id)
	require.NoError(t, err)
	require.NotNil(t, m, "the commit under way ended")

	applied := r.Applied()
	l.create(domain.StatusCandidate, domain.TypeProject, "p04")
	require.Equal(t, applied, r.Applied(), "no writer's event is applied once the runner has stopped")
}

// A token's event is committed before its append returns: one whose commit fails is not
// counted as applied, so its writer is not answered as if it held (a revocation that did not
// hold), and the runner applies it again from the log.
func TestAWritersOwnTokenEventIsCommittedBeforeItCountsAsApplied(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	gate := gatedSource{store: store, open: make(chan struct{})}
	r := newRunner(db, gate, projections.Tokens{})
	startRunner(t, r)
	commits := holdOwnCommits(t, r)
	commits.fail.Store(true)
	store.Stored = r.Offer
	issued := domain.NewEvent("alice", domain.Meta{EventID: "token-alice", Actor: "tester", Time: t0},
		domain.TokenIssued{Role: domain.RoleReader, Digest: "d-alice", DigestKind: domain.DigestSHA256})
	appended := make(chan eventstore.Appended, 1)
	go func() {
		res, err := store.Append(context.Background(), 0, issued)
		assert.NoError(t, err)
		appended <- res
	}()
	receive(t, commits.begun, "the commit of the token's event")
	select {
	case <-appended:
		t.Fatal("the append of a token's event returned before its commit ended")
	case <-time.After(100 * time.Millisecond):
	}
	close(commits.release)
	res := receive(t, appended, "the append's return")
	require.Zero(t, r.Applied(), "a token's event whose commit failed is not counted as applied")
	failure, _ := r.Failure()
	require.ErrorContains(t, failure, "the disk went away")

	commits.fail.Store(false)
	close(gate.open)
	require.Eventually(t, func() bool {
		failure, _ := r.Failure()
		return failure == nil && r.Applied() == res.Seq
	}, waitTimeout, 10*time.Millisecond, "applied again from the log")
	tok, err := db.TokenByDigest("d-alice")
	require.NoError(t, err)
	require.Equal(t, "alice", tok.Name)
}

// ownCommits holds and fails the commits of a runner's own events (see
// projections.HookOwnCommits): each commit sends on begun as it starts (without waiting for a
// receiver), waits for release to be closed while hold is set (or for the test's end), and
// fails while fail is set.
type ownCommits struct {
	// count is the number of commits begun.
	count      atomic.Int32
	begun      chan struct{}
	release    chan struct{}
	hold, fail atomic.Bool
}

// holdOwnCommits hooks r's own commits, held until released. Called after startRunner, the
// test's end lets a held commit go before the runner is stopped.
func holdOwnCommits(t *testing.T, r *projections.Runner) *ownCommits {
	c := &ownCommits{begun: make(chan struct{}, 1), release: make(chan struct{})}
	c.hold.Store(true)
	ended := make(chan struct{})
	t.Cleanup(func() { close(ended) })
	projections.HookOwnCommits(r, func(evs []domain.Event) error {
		c.count.Add(1)
		select {
		case c.begun <- struct{}{}:
		default:
		}
		if c.hold.Load() {
			select {
			case <-c.release:
			case <-ended:
			}
		}
		if c.fail.Load() {
			return errors.New("the disk went away")
		}
		return nil
	})
	return c
}

// Writers' own events that follow one another are committed together: they count as applied
// as each append returns, and one transaction writes them all, once a read rushes it (here the
// group would otherwise gather for a minute). An event the log delivers to the runner before
// its writer offers it joins the group too; a token's event, which cannot, rushes it.
func TestWritersOwnEventsThatFollowOneAnotherAreCommittedTogether(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	gate := gatedSource{store: store, open: make(chan struct{})}
	r := newRunner(db, gate, projections.NewMemories(projections.DefaultStateCacheBytes))
	projections.GatherOwnFor(r, time.Minute)
	startRunner(t, r)
	commits := holdOwnCommits(t, r)
	commits.hold.Store(false)
	store.Stored = r.Offer

	writeMixedLog(l, 10)
	require.Equal(t, l.last(), r.Applied(), "each counted as applied as its append returns")
	require.Zero(t, commits.count.Load(), "nothing committed while the group gathers")

	// A reader that waits for the commit without rushing it, and reads what is committed.
	committed := make(chan error, 1)
	go func() { committed <- r.WaitCommitted(context.Background(), l.last()) }()
	select {
	case err := <-committed:
		t.Fatalf("WaitCommitted returned (%v) before the group committed", err)
	case <-time.After(100 * time.Millisecond):
	}
	m, err := db.GetMemoryCommitted(l.events[0].AggregateID)
	require.NoError(t, err)
	require.Nil(t, m, "nothing is committed yet")
	require.Zero(t, commits.count.Load(), "neither rushed the group")

	requireViewsMatch(t, db, l) // its reads rush the group
	require.NoError(t, receive(t, committed, "WaitCommitted's return after the commit"))
	m, err = db.GetMemoryCommitted(l.events[0].AggregateID)
	require.NoError(t, err)
	require.NotNil(t, m)
	require.Equal(t, int32(1), commits.count.Load(), "every event in one commit")
	require.Equal(t, len(l.events), auditCount(t, db))

	// The log's copies of what is applied are passed over; an event the log delivers to the
	// runner (its writer offers none here) joins the group being gathered.
	writeMixedLog(l, 3)
	require.Equal(t, l.last(), r.Applied())
	close(gate.open)
	store.Stored = nil
	id := l.create(domain.StatusCandidate, domain.TypeProject, "p04")
	waitFor(t, r, l.last()) // within waitTimeout, not the minute of the gathering
	require.Equal(t, int32(1), commits.count.Load(), "the runner's event joined the group")

	// A token's event cannot join (it is committed before it counts as applied): the runner
	// rushes the group and applies it after.
	res, err := store.Append(context.Background(), 0, domain.NewEvent("alice",
		domain.Meta{EventID: "token-alice", Actor: "tester", Time: t0},
		domain.TokenIssued{Role: domain.RoleReader, Digest: "d-alice", DigestKind: domain.DigestSHA256}))
	require.NoError(t, err)
	waitFor(t, r, res.Seq)
	require.Equal(t, int32(2), commits.count.Load(), "the group committed before the runner's batch")
	m, err = db.GetMemory(id)
	require.NoError(t, err)
	require.NotNil(t, m)
	requireViewsMatch(t, db, l)
	require.Equal(t, len(l.events), auditCount(t, db))
}

// A group of writers' own events whose commit fails takes back every position in it, after
// the runner's follow passed over the log's copies of them as applied: the runner reads the
// log again from the last position committed and applies them all, once, in order.
func TestAFailedGroupOfOwnEventsIsAppliedAgainFromTheLog(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	gate := &laterFollowsGated{store: store, first: make(chan struct{}), later: make(chan struct{})}
	r := newRunner(db, gate, projections.NewMemories(projections.DefaultStateCacheBytes))
	projections.GatherOwnFor(r, time.Minute)
	startRunner(t, r)
	commits := holdOwnCommits(t, r)
	commits.hold.Store(false)
	store.Stored = r.Offer
	writeMixedLog(l, 5)
	requireViewsMatch(t, db, l)
	before := l.last()

	commits.fail.Store(true)
	writeMixedLog(l, 10)
	require.Equal(t, l.last(), r.Applied())
	close(gate.first)
	time.Sleep(100 * time.Millisecond) // the log's copies reach the runner, which passes over them
	failing := commits.count.Load()
	_, err := db.GetMemory(l.events[len(l.events)-1].AggregateID) // rushes the commit, which fails
	require.NoError(t, err)
	require.Greater(t, commits.count.Load(), failing)
	failure, _ := r.Failure()
	require.ErrorContains(t, failure, "the disk went away")
	require.Less(t, r.Applied(), l.last(), "the positions are taken back")
	require.GreaterOrEqual(t, r.Applied(), before)

	close(gate.later) // the follow started again after the failure reads the log
	require.Eventually(t, func() bool {
		failure, _ := r.Failure()
		return failure == nil && r.Applied() == l.last()
	}, waitTimeout, 10*time.Millisecond, "applied again from the log")
	requireViewsMatch(t, db, l)
	require.Equal(t, len(l.events), auditCount(t, db))
	requireAsRebuilt(t, db, store, l.last(), projections.Memories{})
}

// A group whose transaction fails while one event's does not (a file that cannot grow by the
// group's pages, say) is committed one event at a time: nothing is taken back, and the runner
// does not fail.
func TestAGroupThatFailsWholeIsCommittedOneEventAtATime(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir, eventstore.FsyncInterval)
	l := newLedgerLog(t, store)
	db := openDB(t, filepath.Join(dir, "projections.db"))
	gate := gatedSource{store: store, open: make(chan struct{})}
	r := newRunner(db, gate, projections.NewMemories(projections.DefaultStateCacheBytes))
	projections.GatherOwnFor(r, time.Minute)
	startRunner(t, r)
	var sizes []int
	projections.HookOwnCommits(r, func(evs []domain.Event) error {
		sizes = append(sizes, len(evs))
		if len(evs) > 1 {
			return errors.New("the file cannot grow by that much")
		}
		return nil
	})
	store.Stored = r.Offer
	writeMixedLog(l, 3)
	n := len(l.events)
	require.Equal(t, l.last(), r.Applied())
	requireViewsMatch(t, db, l) // rushes the group; runs once it has ended
	require.Equal(t, n, sizes[0], "the group first")
	require.Len(t, sizes, 1+n, "then each event alone")
	failure, _ := r.Failure()
	require.NoError(t, failure)
	require.Equal(t, l.last(), r.Applied())
	require.Equal(t, n, auditCount(t, db))
}

// laterFollowsGated follows the log once first is closed, and each later follow (one started
// again) once later is closed.
type laterFollowsGated struct {
	store        *eventstore.Store
	first, later chan struct{}
	calls        atomic.Int32
}

func (g *laterFollowsGated) Follow(ctx context.Context, from uint64, out chan<- domain.Event) error {
	gate := g.first
	if g.calls.Add(1) > 1 {
		gate = g.later
	}
	select {
	case <-gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.store.Follow(ctx, from, out)
}

// requireAsRebuilt requires db to hold what a rebuild of store's log up to last with ps makes.
func requireAsRebuilt(t *testing.T, db *projections.DB, store *eventstore.Store, last uint64, ps ...projections.Projection) {
	t.Helper()
	rebuilt, err := projections.Build(context.Background(), filepath.Join(t.TempDir(), "rebuilt.db"), store, ps, last, nil)
	require.NoError(t, err)
	cleanupDB(t, rebuilt)
	diffs, err := projections.Diff(db, rebuilt, 10)
	require.NoError(t, err)
	require.Empty(t, diffs)
}
