package subscriptions

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// pullless is a consumer whose first pull iterator never asks the server for anything, as
// an iterator whose pull request was skipped or lost: the events wait on the server.
type pullless struct {
	jetstream.Consumer
	iterators atomic.Int32
}

func (c *pullless) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	if c.iterators.Add(1) == 1 {
		return &silentIterator{stopped: make(chan struct{})}, nil
	}
	return c.Consumer.Messages(opts...)
}

type silentIterator struct {
	once    sync.Once
	stopped chan struct{}
}

func (it *silentIterator) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	select {
	case <-it.stopped:
		return nil, jetstream.ErrMsgIteratorClosed
	case <-time.After(20 * time.Millisecond):
		return nil, nats.ErrTimeout
	}
}

func (it *silentIterator) Stop()  { it.once.Do(func() { close(it.stopped) }) }
func (it *silentIterator) Drain() { it.Stop() }

// A feed whose iterator receives nothing while its consumer holds events for it (none out
// unacknowledged) makes a new iterator, and delivers them.
func TestFeedPullsAnewWhenEventsWaitButNoneArrive(t *testing.T) {
	s := eventstore.New(t.TempDir())
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	st, err := s.JetStream().Stream(t.Context(), s.Stream)
	require.NoError(t, err)
	var want []uint64
	for range 3 {
		ev := domain.NewEvent(uuid.NewString(), domain.Meta{EventID: uuid.NewString(), Actor: "test", Time: time.Now()},
			domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: "waits on the server", Status: domain.StatusActive, Confidence: 0.5})
		res, err := s.Append(t.Context(), 0, ev)
		require.NoError(t, err)
		want = append(want, res.Seq)
	}
	var mu sync.Mutex
	var got []uint64
	f := &Feed{Stream: st, Name: "pullless", Start: Start{Seq: 1}, Deliver: func(_ context.Context, m Message) error {
		mu.Lock()
		got = append(got, m.Seq)
		mu.Unlock()
		return nil
	}}
	require.NoError(t, f.Open(t.Context()))
	cons := &pullless{Consumer: f.cons}
	f.cons = cons
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(want)
	}, 20*time.Second, 10*time.Millisecond, "the events are delivered")
	mu.Lock()
	require.Equal(t, want, got)
	mu.Unlock()
	require.Equal(t, int32(2), cons.iterators.Load(), "a second iterator")
}
