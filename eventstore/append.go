package eventstore

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream's answers to a publish whose expected last subject sequence is not the subject's
// last sequence: 10071 on any stream, 10164 from a replicated stream's leader.
const (
	errCodeWrongLastSequence         jetstream.ErrorCode = 10071
	errCodeWrongLastSequenceReplicas jetstream.ErrorCode = 10164
)

// Unchecked, as the expected position of an append, appends whatever the aggregate's last
// event: for aggregates that are streams of facts (alerts, job results), not state machines.
const Unchecked = ^uint64(0)

// Appended is the result of an append.
type Appended struct {
	// Seq is the log position of the last event appended.
	Seq uint64
	// Duplicate is true when the log already held an event with the same id; Seq is then that
	// event's position and nothing was written.
	Duplicate bool
}

// Append writes events of one aggregate to the log, the first only if the aggregate's last
// event is at position expected (0: the aggregate has no events yet), each next one after
// the previous. A changed aggregate is domain.ErrConflict. Each event's id is its message id,
// so an event appended twice within the duplicate window is stored once. Append sets each
// event's Seq to its log position.
func (s *Store) Append(ctx context.Context, expected uint64, evs ...domain.Event) (Appended, error) {
	return s.publish(ctx, expected, evs, func(seq uint64) []jetstream.PublishOpt {
		if seq == Unchecked {
			return nil
		}
		return []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(seq)}
	})
}

// AppendFor writes events like Append, but the first only if the last event on any subject
// matching filter (a wildcard such as ledger.project.>) is at position expected: the
// consistency boundary of a decision taken on several aggregates at once.
func (s *Store) AppendFor(ctx context.Context, filter string, expected uint64, evs ...domain.Event) (Appended, error) {
	return s.publish(ctx, expected, evs, func(seq uint64) []jetstream.PublishOpt {
		return []jetstream.PublishOpt{jetstream.WithExpectLastSequenceForSubject(seq, filter)}
	})
}

// publish appends evs in order, each with its id as message id and the expectation expect
// returns for the position the previous one reached (expected for the first).
func (s *Store) publish(ctx context.Context, expected uint64, evs []domain.Event, expect func(uint64) []jetstream.PublishOpt) (Appended, error) {
	var res Appended
	for i, ev := range evs {
		subject, err := Subject(ev)
		if err != nil {
			return res, err
		}
		data, err := Encode(ev)
		if err != nil {
			return res, err
		}
		if max := s.nc.MaxPayload(); max > 0 && int64(len(data)) > max {
			return res, fmt.Errorf("append %s to %s: %w: the event is %d bytes encoded; the log stores at most %d bytes per event",
				ev.Type, subject, domain.ErrTooLarge, len(data), max)
		}
		if broken := s.Broken(); broken != nil {
			// Refused at once: the server would not answer it.
			err := fmt.Errorf("append %s to %s: %w", ev.Type, subject, cannotWrite(broken))
			s.noteAppend(err)
			return res, err
		}
		err = s.appendHook()
		var ack *jetstream.PubAck
		if err == nil {
			ack, err = s.publishOne(ctx, subject, data, append(expect(expected), jetstream.WithMsgID(ev.ID)))
		}
		if err != nil {
			res, err := s.retried(ctx, res, subject, ev, err)
			s.noteAppend(err)
			return res, err
		}
		s.noteAppend(nil)
		res = Appended{Seq: ack.Sequence, Duplicate: ack.Duplicate}
		if s.Stored != nil && !ack.Duplicate {
			if stored, err := Decode(data, ack.Sequence); err == nil {
				s.Stored(stored)
			}
		}
		evs[i].Seq = ack.Sequence
		if expected != Unchecked {
			expected = ack.Sequence
		}
	}
	return res, nil
}

// Asking again after a replicated stream's leader refused an expectation because it still
// held an event on the subject in flight: at most inFlightTries times, pausing from
// inFlightPause, doubling, up to about half a second in all.
const (
	inFlightTries = 10
	inFlightPause = time.Millisecond
)

// publishOne publishes one message. A replicated stream's leader acknowledges an event before
// it forgets that the event was in flight, and until then refuses every expectation on its
// subject with 10164 (nats-server 2.15 applyStreamEntries). So the next append of an aggregate
// right after the acknowledgement of its last one can be refused although its expectation
// holds: such a refusal is asked again after a pause. A real mismatch is answered with 10071
// once the event in flight is stored; a 10164 still there after the last try is a conflict.
func (s *Store) publishOne(ctx context.Context, subject string, data []byte, opts []jetstream.PublishOpt) (*jetstream.PubAck, error) {
	pause := inFlightPause
	for try := 1; ; try++ {
		ack, err := s.js.Publish(ctx, subject, data, opts...)
		var apiErr *jetstream.APIError
		if err == nil || try == inFlightTries || !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeWrongLastSequenceReplicas {
			return ack, err
		}
		select {
		case <-ctx.Done():
			// Not a conflict: the append was not stored, and was given up on.
			return nil, fmt.Errorf("%w (asking again after: %v)", ctx.Err(), err)
		case <-time.After(pause):
		}
		pause *= 2
	}
}

// retried handles a refused publish of ev: the server checks the expected sequence before
// the message id, so the retry of an append that was stored is refused as a conflict. When
// the aggregate holds an event with ev's id, the append is that duplicate; otherwise the error
// is mapped to the domain's.
func (s *Store) retried(ctx context.Context, res Appended, subject string, ev domain.Event, err error) (Appended, error) {
	err = mapError(err)
	if errors.Is(err, domain.ErrUnavailable) {
		// A stream that failed a write does not answer the later ones: say why.
		if werr := s.writeError(); werr != nil {
			err = cannotWrite(werr)
		}
	}
	if errors.Is(err, domain.ErrConflict) {
		evs, _, lerr := s.loadSubject(ctx, subject)
		if lerr == nil {
			for _, stored := range evs {
				if stored.ID == ev.ID {
					return Appended{Seq: stored.Seq, Duplicate: true}, nil
				}
			}
		}
	}
	return res, fmt.Errorf("append %s to %s: %w", ev.Type, subject, err)
}

// JetStream's answers to a message larger than the stream's or the server's maximum, to a
// message it has no storage for (10023, 10047: a full disk), and of a server whose JetStream
// is off (10076, 10039: the server turns it off when its disk is full).
const (
	errCodeMessageTooLarge         jetstream.ErrorCode = 10054
	errCodeInsufficientResources   jetstream.ErrorCode = 10023
	errCodeStorageExceeded         jetstream.ErrorCode = 10047
	errCodeJetStreamNotEnabled     jetstream.ErrorCode = 10076
	errCodeJetStreamNotEnabledAcct jetstream.ErrorCode = 10039
)

// mapError is the one place where JetStream's errors become the domain's.
func mapError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return fmt.Errorf("%w: the log did not acknowledge the append in time (%w); it may or may not be stored: retry with the same Idempotency-Key",
			domain.ErrUnavailable, err)
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return fmt.Errorf("%w: %w", domain.ErrTooLarge, err)
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: the log's disk is full (%w); retry once space allows", domain.ErrInsufficientStorage, err)
	}
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return fmt.Errorf("%w: the log does not take appends now (%w); nothing was stored: retry later", domain.ErrUnavailable, err)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeWrongLastSequence, errCodeWrongLastSequenceReplicas:
			return fmt.Errorf("%w: changed concurrently (%w)", domain.ErrConflict, err)
		case errCodeMessageTooLarge:
			return fmt.Errorf("%w: %w", domain.ErrTooLarge, err)
		case errCodeInsufficientResources, errCodeStorageExceeded:
			return fmt.Errorf("%w: the log has no space for the append (%w); retry once space allows", domain.ErrInsufficientStorage, err)
		case errCodeJetStreamNotEnabled, errCodeJetStreamNotEnabledAcct:
			return fmt.Errorf("%w: the log does not take appends now (%w); nothing was stored: retry later", domain.ErrUnavailable, err)
		}
	}
	return err
}
