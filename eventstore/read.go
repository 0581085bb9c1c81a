package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Message is one message of the log as it is stored: its position, its subject, its body
// byte for byte (an event's envelope, see Decode) and its message id.
type Message struct {
	Seq     uint64
	Subject string
	Data    []byte
	// MsgID is the Nats-Msg-Id header the message was published with: the event's id.
	MsgID string
	// Stored is when the server stored it (not the event's time, which is in Data).
	Stored time.Time
}

// DefaultReadAhead is how many messages Read pulls ahead of the caller at most.
const DefaultReadAhead = 256

// ReadOptions say which part of the log Read reads.
type ReadOptions struct {
	// From is the first position read (0 and 1 both mean the log's start).
	From uint64
	// To, when set, is the last position read. Without Follow, Read ends at To or at the
	// position that was last when it started, whichever is first.
	To uint64
	// Subjects, when set, are subject filters (see CheckFilter): only messages on a subject
	// matching one of them are read.
	Subjects []string
	// Follow goes on with the messages appended after the end of the log (up to To, when
	// set), until ctx is done.
	Follow bool
	// ReadAhead bounds the messages pulled ahead of fn (DefaultReadAhead when 0): what a slow
	// caller makes the store hold.
	ReadAhead int
	// Resume, with Follow, goes on from the message after the last one read, with a new
	// consumer, when the read's consumer fails and cannot be made again at once, as Follow
	// does; without it, such a read ends with the consumer's error.
	Resume bool
}

// ErrStop, returned by Read's fn, ends the reading without an error.
var ErrStop = errors.New("stop reading")

// Read calls fn with the log's messages in order, as stored, from opts.From on: it catches
// up with the past and, with opts.Follow, follows new messages live, through one ordered
// consumer, so that none is missed or repeated between the two. fn returning ErrStop ends the
// reading (Read returns nil); any other error ends it with that error. A read that follows ends
// when ctx is done, returning ctx's error.
func (s *Store) Read(ctx context.Context, opts ReadOptions, fn func(Message) error) error {
	for _, f := range opts.Subjects {
		if err := CheckFilter(f); err != nil {
			return err
		}
	}
	from := max(opts.From, 1)
	end := opts.To
	if !opts.Follow {
		last, err := s.LastSeq(ctx)
		if err != nil {
			return err
		}
		if end == 0 || end > last {
			end = last
		}
		if from > end {
			return nil
		}
	}
	if end != 0 && from > end {
		return nil
	}
	if opts.Follow && opts.Resume {
		next := from
		return s.resume(ctx, "read log", &next, func() error { return s.read(ctx, opts, &next, end, fn) })
	}
	return s.read(ctx, opts, &from, end, fn)
}

// read is one consumer's part of Read, from position *next on, up to end (0: none); it moves
// *next past each message it reads. A failure of the consumer is an errConsumer.
func (s *Store) read(ctx context.Context, opts ReadOptions, next *uint64, end uint64, fn func(Message) error) error {
	from := *next
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
		FilterSubjects: serverFilters(opts.Subjects),
		// A consumer that fails and cannot be made again at once ends the read with an error,
		// instead of a wait for ever (see orderedResets).
		MaxResetAttempts: orderedResets,
	}
	// Matched here too: the consumer's filters may be wider (overlapping filters are merged).
	match := func(string) bool { return true }
	if len(opts.Subjects) > 0 {
		match = func(subject string) bool {
			for _, f := range opts.Subjects {
				if FilterMatches(f, subject) {
					return true
				}
			}
			return false
		}
	}
	cons, err := s.js.OrderedConsumer(ctx, s.Stream, cfg)
	if err != nil {
		return errConsumer{fmt.Errorf("read log from %d: %w", from, err)}
	}
	if !opts.Follow {
		if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
			return nil
		}
	}
	ahead := opts.ReadAhead
	if ahead <= 0 {
		ahead = DefaultReadAhead
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(ahead), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return errConsumer{fmt.Errorf("read log from %d: %w", from, err)}
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
			return errConsumer{fmt.Errorf("read log from %d: %w", *next, err)}
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		seq := meta.Sequence.Stream
		if end != 0 && seq > end {
			return nil
		}
		*next = seq + 1
		if match(msg.Subject()) {
			err := fn(Message{Seq: seq, Subject: msg.Subject(), Data: msg.Data(),
				MsgID: msg.Headers().Get(nats.MsgIdHdr), Stored: meta.Timestamp})
			if errors.Is(err, ErrStop) {
				return nil
			}
			if err != nil {
				return err
			}
		}
		if end != 0 && (seq == end || (!opts.Follow && meta.NumPending == 0)) {
			return nil
		}
	}
}
