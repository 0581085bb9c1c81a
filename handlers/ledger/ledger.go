// Package ledger is memledger's command layer: every write, from every edge (the HTTP API, the
// web pages, the nightly pipeline and its jobs, the alert sinks recording failures), goes
// through a method of Ledger. Each method checks its caller and note once, reads what the rule
// needs, lets package domain decide, appends with the right expected position, waits for the
// projections and answers with the result. No other package appends to the log (a test in
// tests/ keeps it so); a new kind of write is a new method here, in a file of its own.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// DefaultWaitTimeout bounds how long a write waits for the projections when WaitTimeout is 0.
const DefaultWaitTimeout = 10 * time.Second

// maxIdempotencyKey bounds an idempotency key's length.
const maxIdempotencyKey = 128

// Waiter is what the ledger needs of the projection runner: where it stands and how to wait
// until it has applied the event at a log position.
type Waiter = projections.Positioned

// Ledger carries out the commands. Set its fields, then use it; the zero Now, WaitTimeout and
// Logger mean time.Now, DefaultWaitTimeout and slog.Default.
type Ledger struct {
	Store *eventstore.Store
	// DB holds the views the cross-aggregate rules read (project aliases, chunk ids) and the
	// recorded answers of idempotent retries.
	DB *projections.DB
	// Runner is waited on until the projections have applied a write.
	Runner Waiter
	Rules  domain.Rules
	// Now is the clock commands are stamped with.
	Now func() time.Time
	// WaitTimeout bounds how long a write waits for the projections to apply it.
	WaitTimeout time.Duration
	// Refuse, when set, is asked by every command before it writes: an error it returns (why
	// the service cannot write now, such as projections that cannot be written) refuses the
	// command with ErrUnwritable, before anything is appended.
	Refuse func() error
	// TokenKey digests the secrets of the tokens it issues (IssueToken refuses without one).
	TokenKey *TokenKey
	Logger   *slog.Logger
}

// Caller is who asks for a command. It is the one place where an edge says who it acts for:
// authentication fills Principal, and the checks of what a caller may do are made here.
type Caller struct {
	// Actor is recorded on every event of the command (1 to 64 letters, digits or . _ : @ / -).
	Actor string
	// Principal is the authenticated identity behind the request; empty while the service
	// does not authenticate.
	Principal string
	// CorrelationID, when set, is recorded on the events to tie them to the caller's request.
	CorrelationID string
	// Role is the principal's role. While the service does not authenticate, the edges give
	// their callers the admin role (every request may do everything then); the service's own
	// jobs have none. The commands only an admin may issue check it (ErrForbidden).
	Role domain.Role
	// OnBehalf is the principal's right to name another actor (X-Actor).
	OnBehalf bool
}

// Result is where a command's last event landed in the log.
type Result struct {
	// ID is the aggregate the command changed.
	ID string
	// Seq is the log position of the command's last event (of the state read, when the
	// command changed nothing).
	Seq uint64
}

// ErrNotVisible is a write that is in the log but that the projections have not applied
// within WaitTimeout: the write stands, the views lag.
var ErrNotVisible = errors.New("not yet visible")

// NewID returns a new id for a memory, an event or a chunk: a version 7 UUID, ordered by
// creation time, so that the projections' keys grow at the end of their trees instead of
// landing anywhere (a rebuild writes far fewer pages). The time it holds is the record's
// creation time, which the record shows anyway.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

func (l *Ledger) now() time.Time {
	if l.Now == nil {
		return time.Now().UTC()
	}
	return l.Now().UTC()
}

func (l *Ledger) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.Default()
	}
	return l.Logger
}

// Timeout is how long a write waits for the projections (WaitTimeout, or DefaultWaitTimeout).
func (l *Ledger) Timeout() time.Duration {
	if l.WaitTimeout == 0 {
		return DefaultWaitTimeout
	}
	return l.WaitTimeout
}

// meta is the one check of a command's caller and note, and the metadata its events carry:
// the actor, the note (at most Rules.MaxNoteLength characters), the time and the event id
// (key, or a new UUID when key is empty). Every command calls it once, first. While the
// service cannot write (Refuse), it refuses the command with ErrUnwritable.
func (l *Ledger) meta(c Caller, note, key string) (domain.Meta, error) {
	meta, err := l.metaOf(c, note, key)
	if err != nil {
		return meta, err
	}
	return meta, l.refuse()
}

// metaOf is meta without the refusal.
func (l *Ledger) metaOf(c Caller, note, key string) (domain.Meta, error) {
	if err := domain.CheckActor(c.Actor); err != nil {
		return domain.Meta{}, err
	}
	if err := domain.CheckNote(note, l.Rules.MaxNoteLength); err != nil {
		return domain.Meta{}, err
	}
	if key == "" {
		key = NewID()
	} else if len(key) > maxIdempotencyKey || strings.ContainsFunc(key, func(c rune) bool { return c <= ' ' || c > '~' }) {
		return domain.Meta{}, domain.Invalid("Idempotency-Key", "must be 1 to %d printable ASCII characters without spaces", maxIdempotencyKey)
	}
	return domain.Meta{EventID: key, Actor: c.Actor, Principal: c.Principal, Note: note, Time: l.now(), CorrelationID: c.CorrelationID}, nil
}

// Wait waits until the projections have applied the event at seq. A wait that times out
// while ctx is still live is ErrNotVisible.
func (l *Ledger) Wait(ctx context.Context, seq uint64) error {
	timeout := l.Timeout()
	err := projections.WaitApplied(ctx, l.Runner, seq, timeout)
	var behind *projections.BehindError
	if errors.As(err, &behind) {
		return fmt.Errorf("%w: the write is recorded in the log at position %d but the projections have not applied it within %s (they are at %d; retry the read with min_seq=%d, not the write; see /health)",
			ErrNotVisible, seq, timeout, behind.At, seq)
	}
	return notApplied(seq, err)
}

// CaughtUp waits until the projections have applied every event the log holds now.
func (l *Ledger) CaughtUp(ctx context.Context) error {
	last, err := l.Store.LastSeq(ctx)
	if err != nil {
		return err
	}
	return l.Wait(ctx, last)
}

// Project is the one normalisation of a project named by a caller: trimmed, checked as an
// id, and an alias resolved to the project's id ("" stays "", a global memory).
func (l *Ledger) Project(name string) (string, error) {
	p, err := domain.NormalizeProject(name)
	if err != nil || p == "" {
		return p, err
	}
	return l.DB.ResolveProject(p)
}

// appendFact appends an event of a stream of facts (alerts, job results): whatever the
// aggregate's last event, since a fact refuses nothing that came before it.
func (l *Ledger) appendFact(ctx context.Context, ev domain.Event) (Result, error) {
	res, err := l.Store.Append(ctx, eventstore.Unchecked, ev)
	return Result{ID: ev.AggregateID, Seq: res.Seq}, err
}

// recordFact records payload p as a fact of aggregate id, under caller c and note, and waits
// for the projections to apply it.
func (l *Ledger) recordFact(ctx context.Context, c Caller, note, id string, p domain.Payload) (Result, error) {
	meta, err := l.meta(c, note, "")
	if err != nil {
		return Result{}, err
	}
	res, err := l.appendFact(ctx, domain.NewEvent(id, meta, p))
	if err != nil {
		return res, err
	}
	return res, l.Wait(ctx, res.Seq)
}

// onView runs a command whose rules span several aggregates (project aliases, chunk ids): it
// waits until the projections have applied the last event on filter, lets decide read them,
// and appends what decide returns only if no event on filter came in meanwhile. A command
// that meets such an event is decided again, up to maxViewRetries times.
func (l *Ledger) onView(ctx context.Context, filter string, decide func() ([]domain.Event, error)) (Result, error) {
	const maxViewRetries = 3
	for attempt := 0; ; attempt++ {
		last, err := l.Store.LastSeqOf(ctx, filter)
		if err != nil {
			return Result{}, err
		}
		if err := l.Wait(ctx, last); err != nil {
			return Result{}, err
		}
		evs, err := decide()
		if err != nil || len(evs) == 0 {
			return Result{Seq: last}, err
		}
		res, err := l.Store.AppendFor(ctx, filter, last, evs...)
		if errors.Is(err, domain.ErrConflict) && attempt < maxViewRetries {
			continue
		}
		out := Result{ID: evs[0].AggregateID, Seq: res.Seq}
		if err != nil {
			return out, err
		}
		return out, l.Wait(ctx, res.Seq)
	}
}
