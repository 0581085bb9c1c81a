package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/memledger/memledger/domain"
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

// Follow sends the log's events to out in order, starting at position from, and goes on with
// new events as they are appended, until ctx is done (it then returns ctx's error) or an event
// cannot be decoded (a newer schema version than this program reads). A message that is no
// event at all is logged and passed on without data.
func (s *Store) Follow(ctx context.Context, from uint64, out chan<- domain.Event) error {
	if from < 1 {
		from = 1
	}
	cons, err := s.js.OrderedConsumer(ctx, s.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return fmt.Errorf("follow log from %d: %w", from, err)
	}
	// A short heartbeat: an ordered consumer whose first pull goes unanswered (seen on
	// clusters) is recreated after two missed heartbeats.
	it, err := cons.Messages(jetstream.PullMaxMessages(1024), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("follow log from %d: %w", from, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	next := from
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return err
			}
			return fmt.Errorf("follow log: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow log: %w", err)
		}
		if seq := meta.Sequence.Stream; seq > next && !s.lost(next, seq-1) {
			return fmt.Errorf("follow log: %w: positions %d-%d are not delivered (damaged or lost)", domain.ErrLogGap, next, seq-1)
		}
		next = meta.Sequence.Stream + 1
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
