package sinks

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/nats-io/nats.go/jetstream"
)

// Runner feeds one sink from its own durable consumer of the log's alerts, one alert at a
// time and in log order, so that a failing sink holds back only itself. An alert is
// acknowledged once delivered; while a delivery fails, the sink retries it with backoff and
// keeps its place (the alerts behind it wait, in order), for RetryFor at most, then records
// that it gave up and goes on. After a restart the sink resumes after the last alert it
// acknowledged. A sink first started sees the alerts raised from then on, never older ones;
// Redeliver moves it back to any position or time.
type Runner struct {
	Sink   Sink
	Stream jetstream.Stream
	// RetryFor bounds how long one alert is retried (0: until delivered).
	RetryFor time.Duration
	// Attempts, when not zero, also bounds how often an alert is tried.
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after each, up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// GiveUp records an alert the sink gave up on.
	GiveUp func(ctx context.Context, a domain.Alert, attempts int, err error)
	Logger *slog.Logger

	feed   *subscriptions.Feed
	resets chan redeliver
}

// redeliver is a request to move the sink's position.
type redeliver struct {
	start subscriptions.Start
	done  chan error
}

// Status is what /health says of a sink.
type Status struct {
	Delivered uint64     `json:"delivered"`
	Position  uint64     `json:"position"`
	Lag       uint64     `json:"lag"`
	Failing   bool       `json:"failing,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	LastErrAt *time.Time `json:"last_error_at,omitempty"`
}

// Status returns the sink's counters since the process started, its position and its lag.
func (r *Runner) Status() Status {
	if r.feed == nil {
		return Status{}
	}
	st := r.feed.Status(context.Background())
	return Status{Delivered: st.Delivered, Position: st.Position, Lag: st.Lag, Failing: st.Failing,
		LastError: st.LastError, LastErrAt: st.LastErrAt}
}

// Start creates the sink's durable consumer, or finds it where it was; Run then delivers.
func (r *Runner) Start(ctx context.Context) error {
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Backoff <= 0 {
		r.Backoff = 100 * time.Millisecond
	}
	if r.MaxBackoff < r.Backoff {
		r.MaxBackoff = max(r.Backoff, 5*time.Second)
	}
	r.resets = make(chan redeliver)
	r.feed = &subscriptions.Feed{Stream: r.Stream, Name: "alert-sink-" + r.Sink.Name(),
		Description: "memledger alert sink " + r.Sink.Name(), Subjects: []string{eventstore.AlertSubjects},
		Deliver: r.deliver, Backoff: r.Backoff, MaxBackoff: r.MaxBackoff, RetryFor: r.RetryFor, MaxAttempts: r.Attempts,
		Logger: r.Logger.With("sink", r.Sink.Name())}
	if r.GiveUp != nil {
		r.feed.GiveUp = func(ctx context.Context, m subscriptions.Message, attempts int, err error) {
			if a, ok := alertOf(m); ok {
				r.GiveUp(ctx, a, attempts, err)
			}
		}
	}
	if err := r.feed.Open(ctx); err != nil {
		return fmt.Errorf("alert sink %s: %w", r.Sink.Name(), err)
	}
	return nil
}

func alertOf(m subscriptions.Message) (domain.Alert, bool) {
	ev, err := eventstore.Decode(m.Data, m.Seq)
	if err != nil {
		return domain.Alert{}, false
	}
	return domain.AlertOf(ev)
}

func (r *Runner) deliver(ctx context.Context, m subscriptions.Message) error {
	a, ok := alertOf(m)
	if !ok {
		r.Logger.Error("alert sink: not an alert; passed over", "sink", r.Sink.Name(), "seq", m.Seq)
		return nil
	}
	return r.Sink.Deliver(ctx, a)
}

// Run delivers alerts until ctx is done.
func (r *Runner) Run(ctx context.Context) error {
	for {
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.feed.Run(fctx) }()
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return ctx.Err()
		case err := <-done:
			cancel()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The consumer was deleted under the feed (a redelivery by another process):
			// open it again, where that process placed it, or as new.
			r.Logger.Warn("alert sink: its consumer went away; opening it again", "sink", r.Sink.Name(), "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
			if err := r.feed.Open(ctx); err != nil {
				r.Logger.Error("alert sink: cannot open its consumer", "sink", r.Sink.Name(), "err", err)
			}
		case req := <-r.resets:
			cancel()
			<-done
			err := r.feed.Reset(ctx, req.start)
			req.done <- err
			for err != nil {
				// The consumer is gone and could not be made again (the log is unreachable):
				// keep trying, from where the redelivery asked.
				r.Logger.Error("alert sink: redeliver failed; trying again", "sink", r.Sink.Name(), "err", err)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
				err = r.feed.Open(ctx)
			}
		}
	}
}

// Redeliver moves the sink back (or on) to start: the alerts from there on are delivered
// again, in order, whatever was delivered before. The sink must be running.
func (r *Runner) Redeliver(ctx context.Context, start subscriptions.Start) error {
	req := redeliver{start: start, done: make(chan error, 1)}
	select {
	case r.resets <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
