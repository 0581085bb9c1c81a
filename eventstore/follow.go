package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// lost says whether every position from from to to is in Lost.
func (s *Store) lost(from, to uint64) bool {
	for seq := from; seq <= to; {
		i := slices.IndexFunc(s.Lost, func(r domain.SeqRange) bool { return r.From <= seq && seq <= r.To })
		if i < 0 {
			return false
		}
		seq = s.Lost[i].To + 1
	}
	return true
}

// orderedResets is how often an ordered consumer of this package tries to make its server-side
// consumer again (after missed heartbeats, a reconnect, a gap) before its iterator fails: once.
// The JetStream client would otherwise retry for ever under one name, and a cluster that has
// placed the consumer of that name on a server that died without a word (which it counts as
// online for minutes: an R1 consumer may be placed there) never answers for it: the consumer
// never delivers again, until that server comes back. A failed attempt ends the read; Follow
// makes a new consumer, under a new name the cluster places afresh.
const orderedResets = 1

// Waits between a follow's attempts to make a new consumer, doubled after each failed one.
const (
	followRetryMin = 250 * time.Millisecond
	followRetryMax = 5 * time.Second
)

// errConsumer marks a failure of a follow's consumer, after which Follow makes a new one.
type errConsumer struct{ error }

func (e errConsumer) Unwrap() error { return e.error }

// Follow sends the log's events to out in order, starting at position from, and goes on with
// new events as they are appended, until ctx is done (it then returns ctx's error), an event
// cannot be decoded (a newer schema version than this program reads), positions are missing
// (domain.ErrLogGap) or the connection is closed. A message that is no event at all is logged
// and passed on without data. When its consumer fails (its server died, and it could not be
// made again at once), Follow logs it and goes on with a new consumer from the next position.
func (s *Store) Follow(ctx context.Context, from uint64, out chan<- domain.Event) error {
	from = max(from, 1)
	next := from
	return s.resume(ctx, "follow log", &next, func() error { return s.follow(ctx, from, &next, out) })
}

// resume runs read, one consumer's part of a read of the log that has reached position *next,
// again and again while it fails with an errConsumer, logging each failure as what's and
// pausing followRetryMin, doubled while no message is read, up to followRetryMax. It returns
// read's other errors, ctx's when it is done, and nats.ErrConnectionClosed once the store is
// closed under it.
func (s *Store) resume(ctx context.Context, what string, next *uint64, read func() error) error {
	wait := followRetryMin
	for {
		at := *next
		err := read()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var cerr errConsumer
		if !errors.As(err, &cerr) {
			return err
		}
		if s.js.Conn().IsClosed() {
			// No consumer can be made on it again: the store was closed under the read.
			return fmt.Errorf("%s from %d: %w", what, *next, nats.ErrConnectionClosed)
		}
		if *next > at {
			wait = followRetryMin
		}
		s.Logger.Warn(what+": its consumer failed; reading with a new one", "from", *next, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, followRetryMax)
	}
}

// follow is one consumer's part of Follow (begun at from), from position *next on; it moves
// *next past each event it sends. A failure of the consumer is an errConsumer.
func (s *Store) follow(ctx context.Context, from uint64, next *uint64, out chan<- domain.Event) error {
	cons, err := s.js.OrderedConsumer(ctx, s.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy:    jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:      *next,
		MaxResetAttempts: orderedResets,
	})
	if err != nil {
		return errConsumer{fmt.Errorf("follow log from %d: %w", *next, err)}
	}
	// A short heartbeat: an ordered consumer whose first pull goes unanswered (seen on
	// clusters) is recreated after two missed heartbeats.
	it, err := cons.Messages(jetstream.PullMaxMessages(1024), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return errConsumer{fmt.Errorf("follow log from %d: %w", *next, err)}
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return err
			}
			return errConsumer{fmt.Errorf("follow log from %d: %w", *next, err)}
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow log: %w", err)
		}
		if seq := meta.Sequence.Stream; seq > *next && !s.lost(*next, seq-1) {
			return fmt.Errorf("follow log: %w: positions %d-%d are not delivered (damaged or lost)", domain.ErrLogGap, *next, seq-1)
		}
		*next = meta.Sequence.Stream + 1
		s.cover(from, meta.Sequence.Stream)
		ev, err := Decode(msg.Data(), meta.Sequence.Stream)
		if errors.Is(err, ErrMalformed) {
			// Not an event: nobody can read it, and it must not stop every projection. It is
			// passed on without data, which projections skip, and logged.
			s.Logger.Error("skipping a malformed message in the log", "seq", meta.Sequence.Stream, "subject", msg.Subject(), "err", err)
		} else if err != nil {
			return err
		}
		select {
		case out <- ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
