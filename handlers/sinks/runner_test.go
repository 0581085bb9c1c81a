package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func sinkTestStore(t *testing.T) (*eventstore.Store, jetstream.Stream) {
	t.Helper()
	s := eventstore.New(t.TempDir())
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	require.NoError(t, s.Open(context.Background()))
	t.Cleanup(func() { s.Close() })
	stream, err := s.JetStream().Stream(context.Background(), s.Stream)
	require.NoError(t, err)
	return s, stream
}

// sinkTestRaise appends an alert to the log and returns it.
func sinkTestRaise(t *testing.T, s *eventstore.Store, title string) domain.Alert {
	t.Helper()
	ev, err := domain.DecideAlert(domain.RaiseAlert{Severity: "warning", Title: title},
		domain.Meta{EventID: uuid.NewString(), Actor: "test", Time: time.Now()})
	require.NoError(t, err)
	evs := []domain.Event{ev}
	_, err = s.Append(context.Background(), eventstore.Unchecked, evs...)
	require.NoError(t, err)
	a, ok := domain.AlertOf(evs[0])
	require.True(t, ok)
	return a
}

// funcSink is a Sink made of a function.
type funcSink struct {
	name    string
	deliver func(ctx context.Context, a domain.Alert) error
}

func (s funcSink) Name() string { return s.name }

func (s funcSink) Deliver(ctx context.Context, a domain.Alert) error { return s.deliver(ctx, a) }

// recordingSink records the titles it delivered and succeeds.
type recordingSink struct {
	name   string
	mu     sync.Mutex
	titles []string
}

func (s *recordingSink) Name() string { return s.name }

func (s *recordingSink) Deliver(_ context.Context, a domain.Alert) error {
	s.mu.Lock()
	s.titles = append(s.titles, a.Title)
	s.mu.Unlock()
	return nil
}

func (s *recordingSink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.titles...)
}

// sinkTestConsumer is the durable consumer of the sink named name.
func sinkTestConsumer(t *testing.T, stream jetstream.Stream, name string) jetstream.Consumer {
	t.Helper()
	cons, err := stream.Consumer(context.Background(), "alert-sink-"+name)
	require.NoError(t, err)
	return cons
}

// sinkTestRun starts r and returns its consumer and a function that stops it and waits for it.
func sinkTestRun(t *testing.T, r *Runner) (jetstream.Consumer, func()) {
	t.Helper()
	if r.Logger == nil {
		r.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, r.Start(ctx))
	cons := sinkTestConsumer(t, r.Stream, r.Sink.Name())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the sink runner did not stop")
		}
	}
	t.Cleanup(stop)
	return cons, stop
}

func TestSinkRunnerDeliversNewAlertsInOrder(t *testing.T) {
	store, stream := sinkTestStore(t)
	sinkTestRaise(t, store, "before the sink existed")
	sink := &recordingSink{name: "rec"}
	r := &Runner{Sink: sink, Stream: stream}
	cons, stop := sinkTestRun(t, r)
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprint("alert ", i))
		sinkTestRaise(t, store, want[i])
	}
	require.Eventually(t, func() bool { return len(sink.got()) == 5 }, 30*time.Second, 5*time.Millisecond)
	require.Equal(t, want, sink.got(), "a new sink sees the alerts raised from then on, in order")
	require.Eventually(t, func() bool { return r.Status().Delivered == 5 }, 30*time.Second, 5*time.Millisecond)
	stop()
	info, err := cons.Info(context.Background())
	require.NoError(t, err)
	require.Equal(t, "alert-sink-rec", info.Name)
	require.Zero(t, info.NumAckPending)
	require.Zero(t, info.NumPending)

	// A second runner of the same sink resumes after the last one acknowledged.
	sinkTestRaise(t, store, "while stopped")
	again := &recordingSink{name: "rec"}
	sinkTestRun(t, &Runner{Sink: again, Stream: stream})
	require.Eventually(t, func() bool { return len(again.got()) == 1 }, 10*time.Second, 5*time.Millisecond)
	sinkTestRaise(t, store, "after")
	require.Eventually(t, func() bool { return len(again.got()) == 2 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"while stopped", "after"}, again.got())
}

func TestSinkRunnerRetriesGivesUpAndGoesOn(t *testing.T) {
	store, stream := sinkTestStore(t)
	var mu sync.Mutex
	tries := map[string]int{}
	type gaveUp struct {
		title    string
		attempts int
		err      error
	}
	var gave []gaveUp
	sink := funcSink{name: "flaky", deliver: func(_ context.Context, a domain.Alert) error {
		mu.Lock()
		defer mu.Unlock()
		tries[a.Title]++
		switch {
		case strings.HasPrefix(a.Title, "always"):
			return errors.New("down")
		case strings.HasPrefix(a.Title, "permanent"):
			return PermanentError{Err: errors.New("refused")}
		case a.Title == "twice" && tries[a.Title] <= 2:
			return errors.New("not yet")
		}
		return nil
	}}
	r := &Runner{Sink: sink, Stream: stream, Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
		GiveUp: func(_ context.Context, a domain.Alert, attempts int, err error) {
			mu.Lock()
			gave = append(gave, gaveUp{a.Title, attempts, err})
			mu.Unlock()
		}}
	cons, stop := sinkTestRun(t, r)
	for _, title := range []string{"always 1", "twice", "permanent", "ok"} {
		sinkTestRaise(t, store, title)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return tries["ok"] == 1
	}, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	require.Equal(t, map[string]int{"always 1": 3, "twice": 3, "permanent": 1, "ok": 1}, tries)
	require.Len(t, gave, 2)
	require.Equal(t, "always 1", gave[0].title)
	require.Equal(t, 3, gave[0].attempts)
	require.EqualError(t, gave[0].err, "down")
	require.Equal(t, "permanent", gave[1].title)
	require.Equal(t, 1, gave[1].attempts)
	mu.Unlock()
	require.Eventually(t, func() bool { return r.Status().Delivered == 2 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "refused", r.Status().LastError)
	require.NotNil(t, r.Status().LastErrAt)
	stop()
	info, err := cons.Info(context.Background())
	require.NoError(t, err)
	require.Zero(t, info.NumAckPending, "given-up alerts are acknowledged too")
	require.Zero(t, info.NumPending)
}

func TestSinkRunnerUnboundedAttempts(t *testing.T) {
	store, stream := sinkTestStore(t)
	var mu sync.Mutex
	n := 0
	sink := funcSink{name: "file-like", deliver: func(context.Context, domain.Alert) error {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n < 6 {
			return errors.New("not writable yet")
		}
		return nil
	}}
	gaveUp := false
	r := &Runner{Sink: sink, Stream: stream, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		GiveUp: func(context.Context, domain.Alert, int, error) { gaveUp = true }}
	sinkTestRun(t, r)
	sinkTestRaise(t, store, "a")
	require.Eventually(t, func() bool { return r.Status().Delivered == 1 }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	require.Equal(t, 6, n)
	mu.Unlock()
	require.False(t, gaveUp, "Attempts 0 retries until delivered")
}

// A delivery that succeeds just as the service shuts down must still be acknowledged:
// otherwise, after a restart, the sink waits out the consumer's AckWait (subscriptions.DefaultAckWait) and then
// delivers the alert a second time.
func TestSinkRunnerAcksADeliveryThatRacesShutdown(t *testing.T) {
	store, stream := sinkTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	delivered := make(chan string, 10)
	sink := funcSink{name: "racy", deliver: func(_ context.Context, a domain.Alert) error {
		delivered <- a.Title
		cancel() // the service shuts down while the sink reports success
		return nil
	}}
	r := &Runner{Sink: sink, Stream: stream, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	require.NoError(t, r.Start(ctx))
	cons := sinkTestConsumer(t, stream, "racy")
	a := sinkTestRaise(t, store, "delivered once")
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the runner did not stop")
	}
	require.Equal(t, "delivered once", <-delivered)

	info, err := cons.Info(context.Background())
	require.NoError(t, err)
	require.Zero(t, info.NumAckPending, "a delivered alert must be acknowledged even when shutdown follows at once")
	require.Equal(t, a.Seq, info.AckFloor.Stream)

	// After the restart, the next alert comes promptly and the first is not delivered again.
	again := &recordingSink{name: "racy"}
	sinkTestRun(t, &Runner{Sink: again, Stream: stream})
	sinkTestRaise(t, store, "next")
	require.Eventually(t, func() bool { return len(again.got()) > 0 }, 5*time.Second, 5*time.Millisecond,
		"the restarted sink should deliver the next alert promptly")
	require.Equal(t, []string{"next"}, again.got())
}
