package tests

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/subscriptions"
)

// The log's follows on a cluster of nats-server processes, when a server dies with SIGKILL:
// each follow's consumer lives on one server, and a follow whose consumer or connection was
// on the dead one makes a new consumer, which the cluster may place on the dead server again
// (it counts a server that died without a word as online for minutes). Every follow must
// still deliver the events appended after the kill: a follow that stalls leaves its
// instance's projections where they were, and every write on that instance unanswered.
func TestFollowsResumeAfterServerKilled(t *testing.T) {
	if testing.Short() || processTestsOff() {
		t.Skip("builds nats-server and runs it as processes: set MEMLEDGER_PROCESS_TESTS=1")
	}
	c := startNATSProcs(t, buildNATSServer(t), clusterReplicas)
	ctx := t.Context()
	open := func() *eventstore.Store { return openClusterStore(t, c.URLs()) }
	writer := open()
	var written atomic.Uint64
	appendOne := func() error {
		seq, err := appendCreated(ctx, writer, "followed through a server's death")
		if err == nil {
			written.Store(seq)
		}
		return err
	}
	for range 10 {
		require.NoError(t, appendOne())
	}

	// Followers, each on a connection of its own (the client picks a server at random).
	const followers = 12
	seen := make([]atomic.Uint64, followers)
	fctx, stop := context.WithCancel(ctx)
	errs := make(chan error, followers)
	for i := range followers {
		s := open()
		out := make(chan domain.Event, 64)
		go func() { errs <- s.Follow(fctx, 1, out) }()
		go func() {
			for ev := range out {
				seen[i].Store(ev.Seq)
			}
		}()
	}
	t.Cleanup(func() {
		stop()
		for range followers {
			err := <-errs
			if !errors.Is(err, context.Canceled) {
				t.Errorf("follow: %v", err)
			}
		}
	})
	behind := func(want uint64) []string {
		var out []string
		for i := range seen {
			if got := seen[i].Load(); got < want {
				out = append(out, fmt.Sprintf("follower %d at %d", i, got))
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(behind(written.Load())) == 0 }, 60*time.Second, 20*time.Millisecond, "the follows deliver the log")

	c.kill(c.streamLeader(eventstore.DefaultStream))
	killed := time.Now()
	// Appends go on, each tried until the cluster has a leader again.
	var after uint64
	for after == 0 || written.Load() < after+20 {
		if err := appendOne(); err == nil && after == 0 {
			after = written.Load()
			t.Logf("first append after the kill acknowledged after %v", time.Since(killed).Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
		require.Less(t, time.Since(killed), 2*time.Minute, "appends do not resume after the kill")
	}
	want := written.Load()
	for deadline := time.Now().Add(90 * time.Second); len(behind(want)) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if stalled := behind(want); len(stalled) > 0 {
		// Where the stalled follows wait: the goroutines inside the JetStream client's consumers.
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "jetstream.(*orderedConsumer)") || strings.Contains(g, "jetstream.(*orderedSubscription)") {
				t.Logf("%s", g)
			}
		}
		require.Empty(t, stalled, "every follow delivers the events appended after the kill, up to %d", want)
	}
	t.Logf("every follow delivered position %d %v after the kill", want, time.Since(killed).Round(time.Millisecond))
}

// A feed's durable consumer on a cluster of nats-server processes, when its leader's server
// dies with SIGKILL while the feed's connection, to another server, stays up: the pull
// request the dead server held is lost without a word, and the feed must notice (its
// heartbeats stop) and ask again, or it delivers nothing more.
func TestFeedResumesAfterConsumerLeaderKilled(t *testing.T) {
	if testing.Short() || processTestsOff() {
		t.Skip("builds nats-server and runs it as processes: set MEMLEDGER_PROCESS_TESTS=1")
	}
	c := startNATSProcs(t, buildNATSServer(t), clusterReplicas)
	ctx := t.Context()
	open := func(url string) *eventstore.Store { return openClusterStore(t, url) }
	writer := open(c.URLs())
	appendOne := func() error {
		_, err := appendCreated(ctx, writer, "delivered through a server's death")
		return err
	}
	st, err := writer.JetStream().Stream(ctx, eventstore.DefaultStream)
	require.NoError(t, err)
	feed := &subscriptions.Feed{Stream: st, Name: "killed-leader", Start: subscriptions.Start{Seq: 1}}
	require.NoError(t, feed.Open(ctx))
	leader := waitLeader(t, "the feed's consumer", func(ctx context.Context) (*jetstream.ClusterInfo, error) {
		cons, err := st.Consumer(ctx, feed.Name)
		if err != nil {
			return nil, err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return nil, err
		}
		return info.Cluster, nil
	})
	// The feed runs on a connection to a server that is not the consumer's leader.
	var url string
	for _, p := range c.procs {
		if p.name != leader {
			url = p.url
		}
	}
	reader := open(url)
	rst, err := reader.JetStream().Stream(ctx, eventstore.DefaultStream)
	require.NoError(t, err)
	var delivered atomic.Uint64
	feed = &subscriptions.Feed{Stream: rst, Name: feed.Name, Deliver: func(_ context.Context, m subscriptions.Message) error {
		delivered.Store(m.Seq)
		return nil
	}}
	require.NoError(t, feed.Open(ctx))
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- feed.Run(fctx) }()
	t.Cleanup(func() { stop(); <-done })
	for range 5 {
		require.NoError(t, appendOne())
	}
	last, err := writer.LastSeq(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return delivered.Load() >= last }, 60*time.Second, 20*time.Millisecond, "the feed delivers")

	c.kill(leader)
	killed := time.Now()
	for n := 0; n < 5; {
		if appendOne() == nil {
			n++
		}
		require.Less(t, time.Since(killed), 2*time.Minute, "appends do not resume after the kill")
	}
	last, err = writer.LastSeq(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return delivered.Load() >= last }, 60*time.Second, 20*time.Millisecond,
		"the feed delivers the events appended after its consumer's leader died")
	t.Logf("the feed delivered position %d %v after its consumer's leader died", last, time.Since(killed).Round(time.Millisecond))
}

// openClusterStore opens a store on the nats-server processes at url (a list), trying again
// while the cluster elects its leaders, and closes it when the test ends.
func openClusterStore(t *testing.T, url string) *eventstore.Store {
	t.Helper()
	s := eventstore.New(t.TempDir())
	s.URL, s.Replicas = url, clusterReplicas
	require.Eventually(t, func() bool {
		octx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		return s.Open(octx) == nil
	}, 60*time.Second, 100*time.Millisecond, "open the store on the cluster")
	t.Cleanup(func() { s.Close() })
	return s
}

// appendCreated appends the creation of a new memory with content, within 5 s, and returns
// its position.
func appendCreated(ctx context.Context, s *eventstore.Store, content string) (uint64, error) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ev := domain.NewEvent(uuid.NewString(), domain.Meta{EventID: uuid.NewString(), Actor: "test-actor", Time: time.Now().UTC()},
		domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: content})
	res, err := s.Append(actx, 0, ev)
	return res.Seq, err
}
