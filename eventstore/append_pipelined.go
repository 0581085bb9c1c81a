package eventstore

import (
	"context"
	"fmt"

	"github.com/memledger/memledger/domain"
	"github.com/nats-io/nats.go/jetstream"
)

// Prepared is an event to append under an expectation: the position its aggregate's last
// event must be at (or, with Filter set, the last event on any subject matching Filter).
type Prepared struct {
	Event    domain.Event
	Expected uint64
	Filter   string
}

// DefaultPipelineWindow is how many appends AppendPipelined keeps in flight.
const DefaultPipelineWindow = 256

// AppendPipelined appends the events in order, sending each without waiting for the
// acknowledgement of the one before (at most window in flight): for a writer that knows the
// positions its events will take, such as an import into a ledger nobody else writes to. The
// server checks each expectation as it stores the event, so an event of another writer in
// between makes the appends after it fail with domain.ErrConflict rather than interleave. An
// event whose id the log already holds is stored once, and then the positions the writer
// expected no longer hold either. acked is called, in order, with each event's index and its
// append's result up to the first refused append; AppendPipelined then sends nothing more,
// waits for the answers of those in flight (some of which may stand: their writer finds them
// in the log when it loads their aggregates again) and returns the refusal. On a replicated
// stream an event expecting a position on a subject already written to in the call waits for
// the answers of those before it on that subject (one expecting a position on a filter, for
// all before it): the leader checks expectations before it stores the events ahead.
func (s *Store) AppendPipelined(ctx context.Context, evs []Prepared, window int, acked func(i int, a Appended)) error {
	if window < 1 {
		window = DefaultPipelineWindow
	}
	type inflight struct {
		i       int
		subject string
		fut     jetstream.PubAckFuture
		// answered, for an event sent and answered at once (fut nil): its answer.
		answered *Appended
	}
	queue := make([]inflight, 0, window)
	// sent holds the subjects of the events sent so far.
	sent := map[string]bool{}
	// queued tells whether an event on subject waits for its answer.
	queued := func(queue []inflight, subject string) bool {
		for _, f := range queue {
			if f.subject == subject && f.fut != nil {
				return true
			}
		}
		return false
	}
	var failed error
	settle := func(f inflight) {
		if f.answered != nil {
			if failed == nil {
				evs[f.i].Event.Seq = f.answered.Seq
				acked(f.i, *f.answered)
			}
			return
		}
		select {
		case ack := <-f.fut.Ok():
			if failed == nil {
				evs[f.i].Event.Seq = ack.Sequence
				acked(f.i, Appended{Seq: ack.Sequence, Duplicate: ack.Duplicate})
			}
		case err := <-f.fut.Err():
			if failed == nil {
				failed = fmt.Errorf("append %s to %s: %w", evs[f.i].Event.Type, f.subject, mapError(err))
			}
		case <-ctx.Done():
			if failed == nil {
				failed = ctx.Err()
			}
		}
	}
	for i, p := range evs {
		if len(queue) == window {
			settle(queue[0])
			queue = queue[1:]
		}
		if failed != nil {
			break
		}
		subject, err := Subject(p.Event)
		if err != nil {
			failed = err
			break
		}
		data, err := Encode(p.Event)
		if err != nil {
			failed = err
			break
		}
		opts := []jetstream.PublishOpt{jetstream.WithMsgID(p.Event.ID)}
		switch {
		case p.Filter != "":
			opts = append(opts, jetstream.WithExpectLastSequenceForSubject(p.Expected, p.Filter))
		case p.Expected != Unchecked:
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(p.Expected))
		}
		if s.Replicas > 1 && (p.Filter != "" || (p.Expected != Unchecked && sent[subject])) {
			// A replicated stream's leader checks an expectation before it stores the events
			// ahead on its subject (and refuses one on a subject it has an event in flight
			// on): this one is sent once those are answered (all of them, for a filter, which
			// may match any), and asked again while the leader still holds the last one in
			// flight (see publishOne). Its answer waits in the queue, so that acked is still
			// called in order.
			for len(queue) > 0 && (p.Filter != "" || queued(queue, subject)) {
				settle(queue[0])
				queue = queue[1:]
			}
			if failed != nil {
				break
			}
			ack, err := s.publishOne(ctx, subject, data, opts)
			if err != nil {
				failed = fmt.Errorf("append %s to %s: %w", p.Event.Type, subject, mapError(err))
				break
			}
			sent[subject] = true
			queue = append(queue, inflight{i: i, subject: subject, answered: &Appended{Seq: ack.Sequence, Duplicate: ack.Duplicate}})
			continue
		}
		fut, err := s.js.PublishAsync(subject, data, opts...)
		if err != nil {
			failed = fmt.Errorf("append %s to %s: %w", p.Event.Type, subject, err)
			break
		}
		sent[subject] = true
		queue = append(queue, inflight{i: i, subject: subject, fut: fut})
	}
	for _, f := range queue {
		settle(f)
	}
	return failed
}
