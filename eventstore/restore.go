package eventstore

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Restore writes messages read from another log (see Read) into this one at the positions
// they had there, with their subjects, bodies and message ids unchanged: the first must be the
// position right after this log's last, and each next one the position after the previous.
// Each publish expects the stream's last position to be the one before its own, so a message
// that would land elsewhere (another writer, a gap) is refused and nothing after it is
// written; a message the server drops as a duplicate of an id it has just seen is an error
// too. The publishes are pipelined and Restore returns once every one is acknowledged.
func (s *Store) Restore(ctx context.Context, msgs []Message) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for i, m := range msgs {
		if i > 0 && m.Seq != msgs[i-1].Seq+1 {
			return fmt.Errorf("restore: position %d follows %d", m.Seq, msgs[i-1].Seq)
		}
		if m.Seq == 0 {
			return fmt.Errorf("restore: a message without a position")
		}
		msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequence(m.Seq - 1)}
		if m.MsgID != "" {
			opts = append(opts, jetstream.WithMsgID(m.MsgID))
		}
		f, err := s.js.PublishMsgAsync(msg, opts...)
		if err != nil {
			return fmt.Errorf("restore position %d: %w", m.Seq, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			switch {
			case ack.Duplicate:
				return fmt.Errorf("restore position %d: the server dropped it as a duplicate of message id %q at %d", msgs[i].Seq, msgs[i].MsgID, ack.Sequence)
			case ack.Sequence != msgs[i].Seq:
				return fmt.Errorf("restore position %d: stored at %d", msgs[i].Seq, ack.Sequence)
			}
		case err := <-f.Err():
			return fmt.Errorf("restore position %d: %w", msgs[i].Seq, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
