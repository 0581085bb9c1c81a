package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// State is what the stream says of the positions it holds.
type State struct {
	// FirstSeq and LastSeq are the positions of the first and the last event held.
	FirstSeq, LastSeq uint64
	// Msgs is how many events the stream holds.
	Msgs uint64
	// Deleted are the positions between FirstSeq and LastSeq the stream no longer holds.
	Deleted []uint64
	// NumDeleted is how many there are (the stream may count more than it lists).
	NumDeleted int
}

// State asks the stream for its positions, its message count and the positions it lost.
func (s *Store) State(ctx context.Context) (State, error) {
	ctx, cancel := withReadTimeout(ctx)
	defer cancel()
	info, err := s.stream.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return State{}, fmt.Errorf("stream info: %w", err)
	}
	st := info.State
	return State{FirstSeq: st.FirstSeq, LastSeq: st.LastSeq, Msgs: st.Msgs, Deleted: st.Deleted, NumDeleted: st.NumDeleted}, nil
}

// scanIdle bounds the wait for the next message of a scan.
const scanIdle = 5 * time.Second

// Unreadable reads every position from 1 to upTo (headers only, so the server checks each
// message's checksum without sending its body) and returns the positions the stream no longer
// delivers: damaged messages the stream's own counts do not show. Every wait has an end.
func (s *Store) Unreadable(ctx context.Context, upTo uint64) ([]uint64, error) {
	return s.UnreadableRange(ctx, 1, upTo)
}

// UnreadableRange is Unreadable for the positions from from to upTo.
func (s *Store) UnreadableRange(ctx context.Context, from, upTo uint64) ([]uint64, error) {
	from = max(from, 1)
	if upTo < from {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := s.js.OrderedConsumer(ctx, s.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from, HeadersOnly: true,
		MaxResetAttempts: orderedResets})
	if err != nil {
		return nil, fmt.Errorf("scan the log: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return nil, fmt.Errorf("scan the log: %w", err)
	}
	defer it.Stop()
	type result struct {
		msg jetstream.Msg
		err error
	}
	// One reader hands the messages over; the scan waits with a timer only when none is ready.
	got := make(chan result, 4096)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			msg, err := it.Next()
			select {
			case got <- result{msg, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	idle := time.NewTimer(scanIdle)
	defer idle.Stop()
	var missing []uint64
	next := from
	for next <= upTo {
		var r result
		select {
		case r = <-got:
		default:
			idle.Reset(scanIdle)
			select {
			case r = <-got:
			case <-idle.C:
				// The stream holds positions it does not deliver: they are unreadable too.
				it.Stop()
				for ; next <= upTo; next++ {
					missing = append(missing, next)
				}
				return missing, nil
			case <-ctx.Done():
				return missing, ctx.Err()
			}
		}
		if r.err != nil {
			return missing, fmt.Errorf("scan the log: %w", r.err)
		}
		meta, err := r.msg.Metadata()
		if err != nil {
			return missing, fmt.Errorf("scan the log: %w", err)
		}
		seq := meta.Sequence.Stream
		for ; next < seq && next <= upTo; next++ {
			missing = append(missing, next)
		}
		next = seq + 1
		if meta.NumPending == 0 {
			break // nothing after it that the stream can deliver
		}
	}
	for ; next <= upTo; next++ {
		missing = append(missing, next)
	}
	return missing, nil
}
