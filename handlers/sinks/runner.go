package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/nats-io/nats.go/jetstream"
)

// Runner feeds one sink from its own durable consumer of the log's alerts, one alert at a
// time, so that a failing sink holds back only itself. An alert is acknowledged once
// delivered; after a restart the sink resumes after the last one it acknowledged. A sink
// first started sees the alerts raised from then on, never older ones.
type Runner struct {
	Sink   Sink
	Stream jetstream.Stream
	// Attempts is how many times an alert is tried before giving up (0: until delivered).
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after each, up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// GiveUp records an alert the sink gave up on.
	GiveUp func(ctx context.Context, a domain.Alert, attempts int, err error)
	Logger *slog.Logger

	mu        sync.Mutex
	delivered uint64
	lastErr   string
	lastErrAt time.Time
}

// Status is what /health says of a sink.
type Status struct {
	Delivered uint64     `json:"delivered"`
	LastError string     `json:"last_error,omitempty"`
	LastErrAt *time.Time `json:"last_error_at,omitempty"`
}

// Status returns the sink's counters since the process started.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{Delivered: r.delivered, LastError: r.lastErr}
	if !r.lastErrAt.IsZero() {
		t := r.lastErrAt
		st.LastErrAt = &t
	}
	return st
}

// Start creates or updates the sink's durable consumer; Run then delivers.
func (r *Runner) Start(ctx context.Context) (jetstream.Consumer, error) {
	if r.Backoff <= 0 {
		r.Backoff = 100 * time.Millisecond
	}
	if r.MaxBackoff < r.Backoff {
		r.MaxBackoff = max(r.Backoff, 5*time.Second)
	}
	cons, err := r.Stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       "alert-sink-" + r.Sink.Name(),
		Description:   "memledger alert sink " + r.Sink.Name(),
		FilterSubject: eventstore.AlertSubjects,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 1,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("alert sink %s: consumer: %w", r.Sink.Name(), err)
	}
	return cons, nil
}

// Run delivers alerts from cons until ctx is done.
func (r *Runner) Run(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("alert sink %s: %w", r.Sink.Name(), err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			r.Logger.Warn("alert sink: reading the log failed", "sink", r.Sink.Name(), "err", err)
			continue
		}
		r.handle(ctx, msg)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (r *Runner) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		r.Logger.Error("alert sink: message without metadata", "sink", r.Sink.Name(), "err", err)
		msg.Term()
		return
	}
	ev, err := eventstore.Decode(msg.Data(), meta.Sequence.Stream)
	a, ok := domain.AlertOf(ev)
	if err != nil || !ok {
		r.Logger.Error("alert sink: not an alert", "sink", r.Sink.Name(), "seq", meta.Sequence.Stream, "err", err)
		msg.Term()
		return
	}
	// A delivery under way when the service stops gets a moment to finish, and its
	// acknowledgement is sent whatever happens to ctx: an alert delivered must not be
	// delivered again after a restart.
	dctx, cancel := graceContext(ctx, shutdownGrace)
	defer cancel()
	ack := func(settle func(context.Context) error) {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		if err := settle(actx); err != nil {
			r.Logger.Warn("alert sink: ack failed; the alert may be delivered again", "sink", r.Sink.Name(), "alert", a.ID, "err", err)
		}
	}
	wait := r.Backoff
	for attempt := 1; ; attempt++ {
		err := r.Sink.Deliver(dctx, a)
		if err == nil {
			ack(msg.DoubleAck)
			r.mu.Lock()
			r.delivered++
			r.mu.Unlock()
			return
		}
		r.mu.Lock()
		r.lastErr, r.lastErrAt = err.Error(), time.Now().UTC()
		r.mu.Unlock()
		var perm PermanentError
		if errors.As(err, &perm) || (r.Attempts > 0 && attempt >= r.Attempts) {
			r.Logger.Error("alert sink: giving up", "sink", r.Sink.Name(), "alert", a.ID, "attempts", attempt, "err", err)
			if r.GiveUp != nil {
				r.GiveUp(context.WithoutCancel(ctx), a, attempt, err)
			}
			ack(msg.DoubleAck)
			return
		}
		r.Logger.Warn("alert sink: delivery failed; retrying", "sink", r.Sink.Name(), "alert", a.ID, "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			// Stopping: hand the alert back so that the next start delivers it at once.
			ack(func(context.Context) error { return msg.Nak() })
			return
		case <-time.After(wait):
		}
		msg.InProgress()
		wait = min(2*wait, r.MaxBackoff)
	}
}

// shutdownGrace is how long a delivery under way may go on after the service is asked to stop.
const shutdownGrace = 5 * time.Second

// graceContext is a context that ends grace after ctx does.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(gctx, func() { t.Stop() })
	})
	return gctx, func() {
		stop()
		cancel()
	}
}
