package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// Projection is one set of views built from the log.
type Projection interface {
	// Name is the projection's stable name; its checkpoint is stored under it.
	Name() string
	// Init creates the projection's buckets.
	Init(tx *bolt.Tx) error
	// Apply folds one event into the views. It ignores events it has no use for and fails
	// only when bbolt does; it never reads a clock.
	Apply(tx *bolt.Tx, ev domain.Event) error
}

// BatchApplier is a projection that applies a batch's events in one call, to keep what it
// read across them; the runner calls it instead of Apply.
type BatchApplier interface {
	ApplyBatch(tx *bolt.Tx, evs []domain.Event) error
}

// Versioned is a projection whose stored shape has a version. When the version in a file is
// not the projection's, the runner drops the projection's buckets and checkpoint, and the
// projection is built again from the log: a projection changes shape without a manual rebuild.
type Versioned interface {
	Projection
	// Version is the shape's version, raised with every change of what Apply writes.
	Version() int
	// Buckets are every bucket the projection writes.
	Buckets() [][]byte
}

// A Rebuilder is a projection with another form for a build from the log's start (see Build).
type Rebuilder interface {
	// Rebuilding returns the projection that holds its writes within budget.
	Rebuilding(budget *HeldBudget) Projection
}

// A Deferrer is a projection that holds writes back across batches; Build flushes it once the
// runner has reached the end, and whenever the budget of held writes is full.
type Deferrer interface {
	// Flush writes what the projection holds: all of it when all is set, as at a build's end;
	// otherwise it may keep the writes of its scattered buckets (see heldBuckets).
	Flush(tx *bolt.Tx, all bool) error
}

var bucketVersions = []byte("projection_versions")

// StaleVersions names the projections of ps that the file holds, applied to some position, at
// another version than theirs, with the version it holds (0 for none recorded): those a runner
// would drop and build again (see migrate).
func (db *DB) StaleVersions(ps []Projection) (map[string]int, error) {
	stale := map[string]int{}
	err := db.view(func(tx *bolt.Tx) error {
		versions := tx.Bucket(bucketVersions)
		for _, p := range ps {
			v, ok := p.(Versioned)
			if !ok || checkpoint(tx, v.Name()) == 0 {
				continue
			}
			var stored int
			if versions != nil {
				stored = int(decodeSeq(versions.Get([]byte(v.Name()))))
			}
			if stored != v.Version() {
				stale[v.Name()] = stored
			}
		}
		return nil
	})
	return stale, err
}

// Source is the log the runner reads.
type Source interface {
	// Follow sends events from position from on to out, in order, until ctx is done.
	Follow(ctx context.Context, from uint64, out chan<- domain.Event) error
}

// Default runner settings.
const (
	DefaultBatchSize = 1000
	followRetry      = time.Second
	// catchUpGather is the longest a catching-up runner waits for the next event of a batch.
	catchUpGather = 50 * time.Millisecond
)

// Runner applies the log to projections. Set its fields, then call Run.
type Runner struct {
	DB          *DB
	Source      Source
	Projections []Projection
	// BatchSize is the most events applied in one transaction.
	BatchSize int
	// Until, when not zero, makes Run return once every event up to this position is applied.
	Until uint64
	// CatchUpTo, when not zero, is the log position a live runner catches up to at rebuild
	// speed (the log's last position when the service starts): until it is applied, the runner
	// fills batches of RebuildBatchSize events, as a rebuild does, since nobody waits for
	// single events of the past; then it applies what comes as it comes.
	CatchUpTo uint64
	// Held, for a build whose projections hold writes (Rebuilder), is their budget: once they
	// hold it together, each batch ends by writing every held write.
	Held *HeldBudget
	// Progress, when set, is called after each batch with the position applied.
	Progress func(applied uint64)
	// BeforeCommit, when set, is called in each batch's transaction once the projections have
	// written it, before it commits; an error it returns fails the batch as a failed write of
	// the file does. Tests inject a full disk with it, or hold a batch back.
	BeforeCommit func(batch []domain.Event) error
	Logger       *slog.Logger

	// commitHook, when set, is called in the transaction of a writer's own event once it is
	// written, before it commits (see applyOwn); an error it returns fails that commit. Tests
	// hold or fail it.
	commitHook func(evs []domain.Event) error
	// gatherOwn, when not zero, is how long a group of writers' own events gathers instead of
	// ownGather (tests make it long).
	gatherOwn time.Duration

	// offers are events handed over by the writer that appended them (see Offer).
	offers chan domain.Event
	// stopped is set once Run returns: writers' own events are no longer applied for them.
	stopped atomic.Bool
	// applyMu is held while a batch is applied, by the runner or by a writer applying its own
	// event (see Offer).
	applyMu sync.Mutex
	// appliedAt is applied, for the runner's intake; kick wakes the intake after a writer
	// applied its event while held offered events wait for it.
	appliedAt atomic.Uint64
	kick      chan struct{}
	held      atomic.Int64
	// rewinds counts the groups of own events whose commit failed (see commitOwn): a batch
	// its follow took before one is not applied after it.
	rewinds atomic.Uint64

	mu      sync.Mutex
	applied uint64
	// cancelFollow ends the follow under way with errRefollow's cause.
	cancelFollow context.CancelCauseFunc
	changed      chan struct{}
	err          error
	// failure is the write failure the runner retries, since failingSince.
	failure      error
	failingSince time.Time
	// failures counts the times writing began to fail; firstFailure began the last of them.
	failures     uint64
	firstFailure error
}

// offerBuffer is how many offered events wait for the runner; an offer beyond is dropped (the
// log delivers the event anyway). maxPending bounds the offered events held until the events
// before them arrive.
const (
	offerBuffer = 1024
	maxPending  = 4096
)

// A group of writers' own events (see applyOwn) gathers for ownGather at most, and ownGroupMax
// events at most, before it commits.
const (
	ownGather   = 20 * time.Millisecond
	ownGroupMax = 512
)

// Offer hands the runner an event its writer has just appended, as the log stores it (see
// eventstore.Store.Stored), so that a live runner applies it without waiting for the log to
// deliver it: the writer waiting for it answers sooner. When every event before it is applied
// and no batch is being applied, Offer applies it at once (see applyOwn): a single writer's
// answer then waits for no other goroutine. Otherwise (other writers' events are ahead of it
// or being applied, the runner is catching up or failing, a BeforeCommit hook is set) it
// hands the event to the runner. The runner still follows the log, which decides the order:
// an offered event is applied only once every event before it is, and each position is
// applied once, from whichever copy comes first. Offer never waits for the runner; an offer
// the runner has no room for is dropped (the log delivers the event anyway).
func (r *Runner) Offer(ev domain.Event) {
	if r.offers == nil || r.Until > 0 {
		return
	}
	if r.applyOwn(ev) {
		return
	}
	select {
	case r.offers <- ev:
	default:
	}
}

// applyOwn applies ev for its writer when it is the next event to apply and no batch of the
// runner is being applied; false when it will not. It counts ev as applied at once, and the
// writer answers, while ev waits in a group of writers' own events that commits in one
// transaction, in a goroutine of its own, ownGather later (see commitOwn): the writes that
// follow one another join it, and one transaction writes them all instead of one each. Every
// read of the projections begun meanwhile rushes that commit and waits for it (DB.view), so a
// read after the answer sees the write; so does the runner before it applies a batch. A write
// or commit that fails takes the group's positions back and fails the runner as a failed
// batch does; the runner reads the log again from the last position committed and applies
// the events from there. A token's event is committed before applyOwn returns, in a group of
// its own, so that a revocation is answered only once it holds.
func (r *Runner) applyOwn(ev domain.Event) bool {
	if r.BeforeCommit != nil || ev.Seq <= r.CatchUpTo {
		return false
	}
	token := ev.Kind() == domain.KindToken
	for {
		if ev.Seq != r.Applied()+1 {
			return false
		}
		c := r.DB.committing.Load()
		if c == nil {
			break
		}
		if !token {
			switch r.join(c, ev) {
			case joined:
				return true
			case joinedBefore:
				return false // the runner took it from the log first
			case notNext:
				return false
			}
		}
		c.wait() // the lock is free once it has committed
	}
	if !r.applyMu.TryLock() {
		return false
	}
	r.mu.Lock()
	failing := r.failure != nil
	r.mu.Unlock()
	if ev.Seq != r.appliedAt.Load()+1 || failing || r.stopped.Load() {
		r.applyMu.Unlock()
		return false
	}
	c := newCommit(ev)
	c.mu.Lock() // a joiner waits until ev counts as applied
	r.DB.committing.Store(c)
	r.show(ev.Seq)
	c.mu.Unlock()
	r.kickHeld()
	if token {
		// A token's issue or revocation is answered once committed: a revocation that
		// failed to commit must not be taken for done while the token still authenticates.
		c.rush()
		r.commitOwn(c)
		return true
	}
	go r.commitOwn(c)
	return true
}

// What join did.
type joining int

const (
	joined       joining = iota
	joinedBefore         // the event is in the group already
	notNext              // the event does not follow the group
	sealed               // the group has begun its commit
)

// join adds ev to c, the group being gathered, when ev is the group's next event.
func (r *Runner) join(c *commit, ev domain.Event) joining {
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.events[len(c.events)-1].Seq
	switch {
	case c.sealed || r.stopped.Load():
		return sealed
	case ev.Seq <= last:
		return joinedBefore
	case ev.Seq != last+1:
		return notNext
	}
	c.add(ev)
	r.show(ev.Seq)
	if len(c.events) >= ownGroupMax {
		c.rush()
	}
	r.kickHeld()
	return joined
}

// joinBatch adds the runner's batch to c, the group of writers' own events being gathered,
// when the batch follows the group, one event after the other, and holds no token's event:
// the log often delivers a writer's event to the runner before its writer offers it, and the
// group then takes it as it would from the writer. False when it does not join.
func (r *Runner) joinBatch(c *commit, rewinds uint64, batch []domain.Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sealed || r.stopped.Load() || r.rewinds.Load() != rewinds {
		return false
	}
	last := c.events[len(c.events)-1].Seq
	for len(batch) > 0 && batch[0].Seq <= last {
		batch = batch[1:]
	}
	if len(batch) == 0 {
		return true
	}
	for i, ev := range batch {
		if ev.Seq != last+1+uint64(i) || ev.Kind() == domain.KindToken {
			return false
		}
	}
	for _, ev := range batch {
		c.add(ev)
	}
	r.show(batch[len(batch)-1].Seq)
	if len(c.events) >= ownGroupMax {
		c.rush()
	}
	return true
}

// kickHeld wakes the runner's intake when it holds offered events that may now be next.
func (r *Runner) kickHeld() {
	if r.held.Load() > 0 {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// commitOwn gathers the group c for ownGather (or until it is rushed), writes and commits its
// events in one transaction, and releases the runner's lock, which the group has held since
// it began.
func (r *Runner) commitOwn(c *commit) {
	wait := ownGather
	if r.gatherOwn > 0 {
		wait = r.gatherOwn
	}
	gather := time.NewTimer(wait)
	select {
	case <-gather.C:
	case <-c.hurry:
	}
	gather.Stop()
	c.mu.Lock()
	c.sealed = true
	evs := c.events
	c.mu.Unlock()
	commit := func(evs []domain.Event) error {
		return r.DB.bolt.Update(func(tx *bolt.Tx) error {
			if err := r.write(tx, evs); err != nil {
				return err
			}
			if r.commitHook != nil {
				return r.commitHook(evs)
			}
			return nil
		})
	}
	last := evs[len(evs)-1].Seq
	err := commit(evs)
	if err != nil && len(evs) > 1 {
		// One at a time, as far as they go: a failure that a smaller transaction escapes
		// (a file that cannot grow by the group's pages) then takes back fewer of them.
		for len(evs) > 0 {
			if err = commit(evs[:1]); err != nil {
				break
			}
			r.appliedAt.Store(evs[0].Seq)
			evs = evs[1:]
		}
	}
	if err != nil {
		r.Logger.Error("projection runner: writing the projections failed; writes are refused, reads are served, and the events are applied again from the log once they can be written",
			"err", err, "batch_from", evs[0].Seq, "batch_to", evs[len(evs)-1].Seq)
		r.mu.Lock()
		r.applied = r.appliedAt.Load()
		r.mu.Unlock()
		// The runner's follow passed over these events, counted as applied: it reads the
		// log again from the last position committed.
		r.rewinds.Add(1)
		r.refollow()
		r.setFailure(err)
		r.setErr(err)
	} else {
		r.appliedAt.Store(last)
	}
	r.DB.committing.Store(nil)
	// The lock first: the writer of the next event, waiting for done, then finds it free.
	r.applyMu.Unlock()
	close(c.done)
	r.kickHeld()
}

// refollow makes the runner's follow start again from the last position committed.
func (r *Runner) refollow() {
	r.mu.Lock()
	cancel := r.cancelFollow
	r.mu.Unlock()
	if cancel != nil {
		cancel(errRefollow)
	}
}

// Init creates the projections' buckets and reads the position they have all applied.
func (r *Runner) Init() error {
	if r.BatchSize <= 0 {
		r.BatchSize = DefaultBatchSize
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	r.changed = make(chan struct{})
	r.offers = make(chan domain.Event, offerBuffer)
	r.kick = make(chan struct{}, 1)
	defer func() { r.appliedAt.Store(r.applied) }()
	return r.DB.bolt.Update(func(tx *bolt.Tx) error {
		first := true
		versions, err := tx.CreateBucketIfNotExists(bucketVersions)
		if err != nil {
			return err
		}
		for _, p := range r.Projections {
			if v, ok := p.(Versioned); ok {
				if err := migrate(tx, versions, v, r.Logger); err != nil {
					return fmt.Errorf("projection %s: %w", p.Name(), err)
				}
			}
			if err := p.Init(tx); err != nil {
				return fmt.Errorf("init projection %s: %w", p.Name(), err)
			}
			if cp := checkpoint(tx, p.Name()); first || cp < r.applied {
				r.applied, first = cp, false
			}
		}
		return nil
	})
}

// migrate resets a projection stored at another version than v's.
func migrate(tx *bolt.Tx, versions *bolt.Bucket, v Versioned, logger *slog.Logger) error {
	name := []byte(v.Name())
	stored := decodeSeq(versions.Get(name))
	if stored == uint64(v.Version()) {
		return nil
	}
	// Its buckets go whatever the checkpoint: a file that applied nothing may still hold
	// buckets of the old layout, which the new one no longer makes (verify would find them).
	cp := checkpoint(tx, v.Name())
	if cp > 0 {
		logger.Info("projection stored at another version; rebuilding it from the log",
			"projection", v.Name(), "stored", stored, "version", v.Version(), "checkpoint", cp)
	}
	for _, b := range v.Buckets() {
		if tx.Bucket(b) == nil {
			continue
		}
		if err := tx.DeleteBucket(b); err != nil {
			return err
		}
	}
	if cp > 0 {
		if err := setCheckpoint(tx, v.Name(), 0); err != nil {
			return err
		}
	}
	return versions.Put(name, encodeSeq(uint64(v.Version())))
}

// Run follows the log from the lowest checkpoint and applies it until ctx is done or, with
// Until set, until that position is applied. A failed read of the log is retried, and so is a
// failed transaction of a live runner (see applyRetrying); a gap in the log (domain.ErrLogGap)
// or a rebuild's failed transaction stops the runner with its error.
func (r *Runner) Run(ctx context.Context) error {
	if r.Until > 0 && r.Applied() >= r.Until {
		return nil
	}
	defer func() {
		// No own event is applied after Run, and one being committed ends before Run does:
		// the file may be closed after it.
		r.stopped.Store(true)
		if c := r.DB.committing.Load(); c != nil {
			c.rush()
		}
		r.applyMu.Lock()
		r.applyMu.Unlock()
	}()
	for {
		err := r.follow(ctx)
		if errors.Is(err, errDone) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errRefollow) {
			continue
		}
		var applyErr applyError
		if errors.As(err, &applyErr) || errors.Is(err, domain.ErrLogGap) {
			r.setErr(err)
			return err
		}
		r.setErr(err)
		r.Logger.Error("projection runner: reading the log failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(followRetry):
		}
	}
}

var errDone = errors.New("projections caught up")

// errRefollow ends a follow that passed over writers' own events whose commit then failed (see
// Runner.commitOwn): the next follow reads them again.
var errRefollow = errors.New("the writers' own events were not committed; reading the log again")

type applyError struct{ error }

func (e applyError) Unwrap() error { return e.error }

// intake is where a follow takes its events from: the log's delivery and the writers' offers,
// merged into the log's order.
type intake struct {
	events    <-chan domain.Event
	offers    <-chan domain.Event
	followErr <-chan error
	// next is the position of the next event to apply.
	next uint64
	// pending are offered events past next, held until the events before them arrive.
	pending map[uint64]domain.Event
	// applied is the position every projection has applied: a writer may have applied its
	// own events past next (see Runner.Offer), and then sends on kick if held is not zero.
	applied func() uint64
	kick    <-chan struct{}
	// held is the number of pending events, for the writers.
	held *atomic.Int64
}

// catchUp moves next past what the writers have applied, and drops what they made obsolete.
func (in *intake) catchUp() {
	applied := in.applied()
	if applied < in.next {
		return
	}
	if uint64(len(in.pending)) < applied+1-in.next {
		for seq := range in.pending {
			if seq <= applied {
				delete(in.pending, seq)
			}
		}
	} else {
		for seq := in.next; seq <= applied && len(in.pending) > 0; seq++ {
			delete(in.pending, seq)
		}
	}
	in.next = applied + 1
	in.held.Store(int64(len(in.pending)))
}

// pull returns the next event to apply: the event at next, from an offer or the log, or the
// log's next event when it passes over lost positions. A copy of a position already taken is
// passed over. Without block it returns at once, ok false when none is ready; with block it
// waits, until timeout fires (ok false) when timeout is not nil.
func (in *intake) pull(block bool, timeout <-chan time.Time) (ev domain.Event, ok bool, err error) {
	for {
		in.catchUp()
		if ev, ok := in.pending[in.next]; ok {
			delete(in.pending, in.next)
			in.held.Store(int64(len(in.pending)))
			in.next = ev.Seq + 1
			return ev, true, nil
		}
		offered := false
		if block {
			select {
			case ev = <-in.events:
			case ev = <-in.offers:
				offered = true
			case <-in.kick:
				continue
			case err := <-in.followErr:
				return ev, false, err
			case <-timeout:
				return ev, false, nil
			}
		} else {
			select {
			case ev = <-in.events:
			case ev = <-in.offers:
				offered = true
			default:
				return ev, false, nil
			}
		}
		switch {
		case ev.Seq < in.next:
			continue // the other copy was taken
		case offered && ev.Seq > in.next:
			in.hold(ev)
			continue
		}
		if _, ok := in.pending[ev.Seq]; ok {
			delete(in.pending, ev.Seq)
			in.held.Store(int64(len(in.pending)))
		}
		in.next = ev.Seq + 1
		return ev, true, nil
	}
}

// hold keeps an offered event until the events before it arrive, within maxPending.
func (in *intake) hold(ev domain.Event) {
	if len(in.pending) >= maxPending {
		for seq := range in.pending {
			if seq < in.next {
				delete(in.pending, seq)
			}
		}
		if len(in.pending) >= maxPending {
			return // the log delivers it
		}
	}
	in.pending[ev.Seq] = ev
	in.held.Store(int64(len(in.pending)))
}

func (r *Runner) follow(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	// From what is committed: an own event counted as applied may still fail its commit,
	// which then cancels this follow (refollow) once it has counted it as not applied.
	r.mu.Lock()
	rewinds := r.rewinds.Load()
	from := r.appliedAt.Load() + 1
	r.cancelFollow = cancel
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.cancelFollow = nil
		r.mu.Unlock()
		if errors.Is(context.Cause(ctx), errRefollow) {
			err = errRefollow
		}
		cancel(nil)
	}()
	if r.rewinds.Load() != rewinds {
		return errRefollow // a commit failed before this follow could be cancelled
	}
	events := make(chan domain.Event, 4*max(r.BatchSize, RebuildBatchSize))
	followErr := make(chan error, 1)
	go func() { followErr <- r.Source.Follow(ctx, from, events) }()
	// The intake passes over what counts as applied, own events not yet committed included.
	in := &intake{events: events, offers: r.offers, followErr: followErr, next: from, pending: map[uint64]domain.Event{},
		applied: r.Applied, kick: r.kick, held: &r.held}
	batch := make([]domain.Event, 0, r.BatchSize)
	gather := time.NewTimer(catchUpGather)
	defer gather.Stop()
	for {
		batch = batch[:0]
		ev, _, err := in.pull(true, nil)
		if err != nil {
			return err
		}
		batch = append(batch, ev)
		size := r.BatchSize
		catchingUp := r.CatchUpTo > 0 && batch[0].Seq < r.CatchUpTo
		if catchingUp {
			size = max(size, RebuildBatchSize)
			gather.Reset(catchUpGather)
		}
		for len(batch) < size {
			last := batch[len(batch)-1].Seq
			var ev domain.Event
			var ok bool
			var err error
			switch {
			case r.Until > 0 && last < r.Until:
				// A rebuild: nobody waits for single events, so the batch is filled.
				ev, ok, err = in.pull(true, nil)
			case catchingUp && last < r.CatchUpTo:
				// Catching up: filled too, unless the log pauses (an event of the past that
				// is not delivered, say), which must not hold the batch back.
				ev, ok, err = in.pull(true, gather.C)
			default:
				ev, ok, err = in.pull(false, nil)
			}
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			batch = append(batch, ev)
		}
		// past: the log has gone beyond Until (the event at Until itself may be missing).
		past := false
		if r.Until > 0 {
			for len(batch) > 0 && batch[len(batch)-1].Seq > r.Until {
				batch, past = batch[:len(batch)-1], true
			}
			if len(batch) == 0 {
				return errDone
			}
		}
		if err := r.applyLocked(ctx, rewinds, batch); err != nil {
			return err
		}
		applied := r.Applied()
		if r.Progress != nil {
			r.Progress(applied)
		}
		if r.Until > 0 && (applied >= r.Until || past) {
			return errDone
		}
	}
}

// applyLocked applies what a writer has not applied of batch (see Offer), under applyMu, after
// the writers' group being gathered has committed. A batch taken by a follow that began before
// the last failed commit of writers' own events (rewinds) is errRefollow.
func (r *Runner) applyLocked(ctx context.Context, rewinds uint64, batch []domain.Event) error {
	if batch[len(batch)-1].Seq <= r.Applied() {
		// Counted as applied already, by writers whose group commits (or, failing, makes
		// the follow start again).
		return nil
	}
	if c := r.DB.committing.Load(); c != nil {
		if r.joinBatch(c, rewinds, batch) {
			return nil
		}
		c.rush()
	}
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	if r.rewinds.Load() != rewinds {
		return errRefollow
	}
	applied := r.appliedAt.Load()
	for len(batch) > 0 && batch[0].Seq <= applied {
		batch = batch[1:]
	}
	if len(batch) == 0 {
		return nil
	}
	return r.applyRetrying(ctx, batch)
}

// Waits between the attempts of a live runner's failed batch: doubled after each, up to the most.
const (
	applyRetryMin = 100 * time.Millisecond
	applyRetryMax = 2 * time.Second
)

// applyRetrying applies batch. A rebuild's failure ends it; a live runner keeps the batch and
// tries it again, with backoff, until it applies or ctx ends: a full disk or a failing write
// degrades the service (Failure says why, writes are refused, reads are served from what is
// applied) and it resumes by itself once the cause goes away.
func (r *Runner) applyRetrying(ctx context.Context, batch []domain.Event) error {
	wait := applyRetryMin
	for {
		err := r.apply(batch)
		if err == nil {
			if failure, since := r.Failure(); failure != nil {
				r.Logger.Info("projection runner: the projections are written again", "failed_since", since, "err", failure, "applied", r.Applied())
			}
			r.setFailure(nil)
			r.setErr(nil)
			return nil
		}
		if r.Until > 0 {
			return applyError{err}
		}
		if failure, _ := r.Failure(); failure == nil {
			r.Logger.Error("projection runner: writing the projections failed; writes are refused, reads are served, retrying until it works",
				"err", err, "batch_from", batch[0].Seq, "batch_to", batch[len(batch)-1].Seq)
		}
		r.setFailure(err)
		r.setErr(err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, applyRetryMax)
	}
}

// Failure is the write failure a live runner is retrying, and since when it fails; nil while it
// applies. While it fails the projections stay where they are.
func (r *Runner) Failure() (error, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failure, r.failingSince
}

// Failures counts the times writing the projections began to fail since the runner started,
// with the first error and the start of the last of those times: a watcher that looks now and
// then misses none, however short.
func (r *Runner) Failures() (count uint64, first error, since time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures, r.firstFailure, r.failingSince
}

// setFailure records the write failure (nil: none) and wakes the waiters, who learn of it.
func (r *Runner) setFailure(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && r.failure == nil {
		r.failingSince, r.firstFailure = time.Now(), err
		r.failures++
	}
	if (err == nil) == (r.failure == nil) {
		r.failure = err
		return
	}
	r.failure = err
	close(r.changed)
	r.changed = make(chan struct{})
}

// apply writes one batch, and every projection's checkpoint, in one transaction.
func (r *Runner) apply(batch []domain.Event) error {
	if err := r.DB.bolt.Update(func(tx *bolt.Tx) error { return r.write(tx, batch) }); err != nil {
		return err
	}
	last := batch[len(batch)-1].Seq
	r.appliedAt.Store(last)
	r.show(last)
	return nil
}

// write writes batch to every projection, and their checkpoints, in tx.
func (r *Runner) write(tx *bolt.Tx, batch []domain.Event) error {
	last := batch[len(batch)-1].Seq
	for _, p := range r.Projections {
		cp := checkpoint(tx, p.Name())
		todo := batch
		for len(todo) > 0 && todo[0].Seq <= cp {
			todo = todo[1:]
		}
		if ba, ok := p.(BatchApplier); ok {
			if err := ba.ApplyBatch(tx, todo); err != nil {
				return fmt.Errorf("projection %s: apply batch %d-%d: %w", p.Name(), batch[0].Seq, last, err)
			}
		} else {
			for _, ev := range todo {
				if err := p.Apply(tx, ev); err != nil {
					return fmt.Errorf("projection %s: apply %s at %d: %w", p.Name(), ev.Type, ev.Seq, err)
				}
			}
		}
		if last > cp {
			if err := setCheckpoint(tx, p.Name(), last); err != nil {
				return err
			}
		}
	}
	if r.Held != nil && r.Held.full() {
		if err := flushHeld(tx, r.Projections, false); err != nil {
			return err
		}
	}
	if r.BeforeCommit != nil {
		return r.BeforeCommit(batch)
	}
	return nil
}

// show makes seq the position the runner counts as applied, and wakes its waiters.
func (r *Runner) show(seq uint64) {
	r.mu.Lock()
	r.applied = seq
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// CatchUp is where the runner stands against CatchUpTo: the position applied and the target;
// the runner is catching up while applied < target.
func (r *Runner) CatchUp() (applied, target uint64) {
	return r.Applied(), r.CatchUpTo
}

// Applied is the log position every projection has applied.
func (r *Runner) Applied() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// Err is the runner's last error, nil once it applies again.
func (r *Runner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *Runner) setErr(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// WaitCommitted returns once the event at position seq is applied and committed, or ctx's
// error, or ErrUnwritable as WaitFor: unlike a read, it does not rush a group of writers' own
// events that holds it (see applyOwn), but waits for the group's own time.
func (r *Runner) WaitCommitted(ctx context.Context, seq uint64) error {
	for {
		if err := r.WaitFor(ctx, seq); err != nil {
			return err
		}
		if r.appliedAt.Load() >= seq {
			return nil
		}
		c := r.DB.committing.Load()
		if c == nil {
			continue // committed (or taken back) meanwhile
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return fmt.Errorf("wait for projections to commit %d: %w", seq, ctx.Err())
		}
	}
}

// ErrUnwritable is a wait that ends because the projections cannot be written (see Failure):
// it would last as long as the failure.
var ErrUnwritable = errors.New("the projections cannot be written")

// WaitFor returns once every projection has applied the event at position seq, or ctx's error,
// or, while the runner cannot write the projections, an ErrUnwritable that wraps the failure.
func (r *Runner) WaitFor(ctx context.Context, seq uint64) error {
	for {
		r.mu.Lock()
		applied, changed, failure, since := r.applied, r.changed, r.failure, r.failingSince
		r.mu.Unlock()
		if applied >= seq {
			return nil
		}
		if failure != nil {
			return fmt.Errorf("%w since %s, at log position %d (%w)", ErrUnwritable, since.UTC().Format(time.RFC3339), applied, failure)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for projections to apply %d (at %d): %w", seq, applied, ctx.Err())
		}
	}
}
