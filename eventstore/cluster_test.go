package eventstore_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/eventstore/eventstoretest"
)

// clusterSize is the number of servers of the test cluster and the stream's replica count.
const clusterSize = 3

// streamInfo asks the cluster for the store's stream information.
func streamInfo(ctx context.Context, s *eventstore.Store) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := s.JetStream().Stream(ctx, eventstore.DefaultStream)
	if err != nil {
		return nil, err
	}
	return st.Info(ctx)
}

// waitForStreamLeader waits until the stream has a leader for which ok is true and whose
// replicas, all online, are current; it returns the leader's name.
func waitForStreamLeader(t *testing.T, s *eventstore.Store, replicas int, ok func(leader string) bool) string {
	t.Helper()
	var leader string
	require.Eventually(t, func() bool {
		info, err := streamInfo(t.Context(), s)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || !ok(info.Cluster.Leader) {
			return false
		}
		current := 0
		for _, p := range info.Cluster.Replicas {
			if p.Current && !p.Offline {
				current++
			}
		}
		if current != replicas {
			return false
		}
		leader = info.Cluster.Leader
		return true
	}, 20*time.Second, 50*time.Millisecond, "stream has no leader with %d current replicas", replicas)
	return leader
}

// moveStreamLeader asks the stream's leader to hand leadership to the server named preferred.
func moveStreamLeader(t *testing.T, s *eventstore.Store, preferred string) {
	t.Helper()
	req, err := json.Marshal(map[string]any{"placement": map[string]string{"preferred": preferred}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	msg, err := s.Conn().RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+eventstore.DefaultStream, req)
	require.NoError(t, err)
	var resp struct {
		Success bool                `json:"success"`
		Error   *jetstream.APIError `json:"error"`
	}
	require.NoError(t, json.Unmarshal(msg.Data, &resp))
	require.Nil(t, resp.Error, "stream leader stepdown")
	require.True(t, resp.Success, "stream leader stepdown")
}

// waitReplicated waits until the stream's replica on every running server holds the log up
// to position seq.
//
// Direct gets may be answered by any replica; Load and LastSeqOf ask the leader first, but
// where the test wants every replica current (before it moves the leader), it waits here.
func waitReplicated(t *testing.T, servers []*server.Server, seq uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, srv := range servers {
			if !srv.Running() {
				continue
			}
			acc, err := srv.JszAccount(&server.JSzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Streams: true})
			if err != nil {
				return false
			}
			found := false
			for _, st := range acc.Streams {
				if st.Name == eventstore.DefaultStream {
					found = st.State.LastSeq >= seq
				}
			}
			if !found {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "replicas do not hold the log up to %d", seq)
}

// leadFromConnected makes the stream's leader the server the store is connected to, once the
// stream has a leader and the given number of current replicas, and returns its name.
func leadFromConnected(t *testing.T, s *eventstore.Store, replicas int) string {
	t.Helper()
	connected := s.Conn().ConnectedServerName()
	if leader := waitForStreamLeader(t, s, replicas, func(string) bool { return true }); leader != connected {
		moveStreamLeader(t, s, connected)
	}
	return waitForStreamLeader(t, s, replicas, func(l string) bool { return l == connected })
}

// followTimeout bounds the wait for followed events. About one in a hundred ordered consumers
// created on the cluster gets nothing from its first pull; the client recreates it when two
// heartbeats (5 s apart by default) are missed, so events can take just over 10 s to arrive.
const followTimeout = 20 * time.Second

// receiveFollowed reads n events from ch, failing the test if Follow returns (on errc) or the
// events do not arrive within followTimeout.
func receiveFollowed(t *testing.T, ch <-chan domain.Event, errc <-chan error, n int) []domain.Event {
	t.Helper()
	timeout := time.After(followTimeout)
	evs := make([]domain.Event, 0, n)
	for len(evs) < n {
		select {
		case ev := <-ch:
			evs = append(evs, ev)
		case err := <-errc:
			require.FailNowf(t, "follow", "Follow returned after %d of %d events: %v", len(evs), n, err)
		case <-timeout:
			require.FailNowf(t, "follow", "received %d of %d events within %v", len(evs), n, followTimeout)
		}
	}
	return evs
}

// conflictCode is the JetStream error code under err, which must be an ErrConflict.
func conflictCode(t *testing.T, err error) jetstream.ErrorCode {
	t.Helper()
	require.ErrorIs(t, err, domain.ErrConflict)
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Contains(t, []jetstream.ErrorCode{10071, 10164}, apiErr.ErrorCode, "error code of %v", err)
	return apiErr.ErrorCode
}

// TestClusterReplicatedStream runs the store against an external three-server JetStream
// cluster with a stream of three replicas, and keeps working when the stream's leader dies.
func TestClusterReplicatedStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server NATS cluster")
	}
	started := time.Now()
	cluster := eventstoretest.StartCluster(t, clusterSize)
	servers := cluster.Servers
	t.Logf("cluster with meta leader after %v", time.Since(started).Round(time.Millisecond))

	s := eventstore.New(t.TempDir())
	s.URL = cluster.URLs()
	s.Replicas = clusterSize
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	require.Empty(t, s.ClientURL(), "an external store has no embedded server")

	// written is every event appended so far, by memory, as Load returns them.
	written := map[string][]domain.Event{}
	// load checks that aggregate id holds exactly what was written, right after the append that
	// wrote it: a read on a replicated stream never misses an acknowledged append.
	load := func(t *testing.T, id string) uint64 {
		t.Helper()
		got, last, err := s.Load(t.Context(), written[id][0].Kind(), id)
		require.NoError(t, err)
		require.Equal(t, written[id], got, "memory %s", id)
		require.Equal(t, written[id][len(written[id])-1].Seq, last)
		return last
	}

	t.Run("StreamHasThreeReplicas", func(t *testing.T) {
		leader := leadFromConnected(t, s, clusterSize-1)
		info, err := streamInfo(t.Context(), s)
		require.NoError(t, err)
		require.Equal(t, clusterSize, info.Config.Replicas)
		require.Equal(t, jetstream.FileStorage, info.Config.Storage)
		require.Equal(t, eventstoretest.ClusterName, info.Cluster.Name)
		require.Len(t, info.Cluster.Replicas, clusterSize-1, "replicas besides the leader")
		names := []string{leader}
		for _, p := range info.Cluster.Replicas {
			names = append(names, p.Name)
		}
		require.ElementsMatch(t, []string{"n1", "n2", "n3"}, names, "the leader and its two replicas")
	})

	var id string
	t.Run("AppendLoad", func(t *testing.T) {
		ctx := t.Context()
		// A stream just made may still change its leader, and a new leader that has not yet
		// applied the last append refuses the next one's expected sequence: the appends below
		// begin once every replica is current.
		require.Eventually(t, func() bool {
			info, err := streamInfo(ctx, s)
			if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != clusterSize-1 {
				return false
			}
			for _, p := range info.Cluster.Replicas {
				if !p.Current {
					return false
				}
			}
			return true
		}, 30*time.Second, 20*time.Millisecond, "every replica of the new stream current")
		id = newMemoryID()
		other := newMemoryID()
		created := memEvent(other, 0, createdPayload(domain.StatusActive))
		res, err := s.Append(ctx, 0, created)
		require.NoError(t, err)
		require.Equal(t, eventstore.Appended{Seq: 1}, res)
		created.Seq = res.Seq
		written[other] = []domain.Event{created}

		evs := []domain.Event{
			memEvent(id, 0, createdPayload(domain.StatusCandidate)),
			memEvent(id, 1, domain.MemoryReinforced{Delta: 0.05}),
			memEvent(id, 2, domain.MemoryPromoted{}),
		}
		res, err = s.Append(ctx, 0, evs...)
		require.NoError(t, err)
		require.Equal(t, eventstore.Appended{Seq: 4}, res)
		require.Equal(t, []uint64{2, 3, 4}, seqs(evs))
		written[id] = evs

		// Each memory loads its own events only.
		require.Equal(t, uint64(4), load(t, id))
		require.Equal(t, uint64(1), load(t, other))
		require.Equal(t, uint64(4), lastSeq(t, s))
	})
	require.NotEmpty(t, written[id], "the later steps build on AppendLoad")

	t.Run("LongBatchOnOneMemory", func(t *testing.T) {
		// Each event of a batch expects the position the previous one was acknowledged at.
		// The leader acknowledges an event before it forgets the event was in flight, and
		// refuses an expectation on that subject until then (10164): the store asks again.
		const n = 200
		m := newMemoryID()
		evs := []domain.Event{memEvent(m, 0, createdPayload(domain.StatusCandidate))}
		for i := 1; i < n; i++ {
			evs = append(evs, memEvent(m, i, domain.MemoryReinforced{Delta: 0.001}))
		}
		before := lastSeq(t, s)
		res, err := s.Append(t.Context(), 0, evs...)
		// What was acknowledged is written, also when the batch was refused part-way.
		for _, ev := range evs {
			if ev.Seq != 0 {
				written[m] = append(written[m], ev)
			}
		}
		require.NoError(t, err)
		require.Equal(t, before+n, res.Seq)
		require.Equal(t, before+n, load(t, m))
	})

	t.Run("PipelinedOnOneMemory", func(t *testing.T) {
		// An import's events, several to one memory among others, sent without waiting.
		a, b := newMemoryID(), newMemoryID()
		before := lastSeq(t, s)
		var items []eventstore.Prepared
		// Each expects its memory's previous event, added before it.
		prev := map[string]uint64{}
		add := func(id string, p domain.Payload) {
			items = append(items, eventstore.Prepared{Event: memEvent(id, len(items), p), Expected: prev[id]})
			prev[id] = before + uint64(len(items))
		}
		add(a, createdPayload(domain.StatusCandidate))
		add(a, domain.MemoryReinforced{Delta: 0.01})
		add(b, createdPayload(domain.StatusActive))
		add(a, domain.MemoryPromoted{})
		add(a, domain.MemoryReinforced{Delta: 0.02})
		add(b, domain.MemoryReinforced{Delta: 0.03})
		// Two projects, each registered expecting the last event of any project (a filter).
		projects := []string{"pipelined-a", "pipelined-b"}
		var projectsLast uint64
		for _, name := range projects {
			items = append(items, eventstore.Prepared{Event: memEvent(name, len(items), domain.ProjectRegistered{Description: "registered in a pipeline"}), Expected: projectsLast, Filter: eventstore.ProjectSubjects})
			projectsLast = before + uint64(len(items))
		}
		add(b, domain.MemoryReinforced{Delta: 0.04})
		var got []uint64
		require.NoError(t, s.AppendPipelined(t.Context(), items, 0, func(i int, ap eventstore.Appended) {
			require.Len(t, got, i, "acknowledged in order")
			got = append(got, ap.Seq)
		}))
		var want []uint64
		for i := range items {
			want = append(want, before+uint64(i+1))
		}
		require.Equal(t, want, got)
		for _, it := range items {
			written[it.Event.AggregateID] = append(written[it.Event.AggregateID], it.Event)
		}
		require.Equal(t, before+5, load(t, a))
		require.Equal(t, before+9, load(t, b))
		for i, name := range projects {
			require.Equal(t, before+uint64(7+i), load(t, name))
		}
	})

	codes := map[jetstream.ErrorCode]int{}
	t.Cleanup(func() { t.Logf("conflicts by JetStream error code: %v", codes) })
	t.Run("StaleExpectedIsConflict", func(t *testing.T) {
		ctx := t.Context()
		before := lastSeq(t, s)
		// A position the memory has moved on from, one ahead of it, and a second create.
		for _, expected := range []uint64{2, 3, 10, 0} {
			_, err := s.Append(ctx, expected, memEvent(id, 3, domain.MemoryReinforced{Delta: 0.1}))
			codes[conflictCode(t, err)]++
		}
		require.Equal(t, before, lastSeq(t, s), "a refused append writes nothing")
		load(t, id)
	})

	t.Run("ConcurrentWritersOneWins", func(t *testing.T) {
		ctx := t.Context()
		expected := written[id][len(written[id])-1].Seq
		before := lastSeq(t, s)

		const writers = 20
		errs := make([]error, writers)
		evs := make([]domain.Event, writers)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range writers {
			evs[i] = memEvent(id, 10+i, domain.MemoryReinforced{Delta: 0.01})
			done.Go(func() {
				start.Wait()
				// A slice of evs, so that Append sets the winner's Seq in it.
				_, errs[i] = s.Append(ctx, expected, evs[i:i+1]...)
			})
		}
		start.Done()
		done.Wait()

		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "a second writer succeeded: %d and %d", winner, i)
				winner = i
				continue
			}
			codes[conflictCode(t, err)]++
		}
		require.NotEqual(t, -1, winner, "no writer succeeded")
		require.Equal(t, before+1, evs[winner].Seq)
		written[id] = append(written[id], evs[winner])
		require.Equal(t, before+1, load(t, id))
		require.Equal(t, before+1, lastSeq(t, s), "the losers wrote nothing")
	})

	t.Run("Idempotent", func(t *testing.T) {
		ctx := t.Context()
		expected := written[id][len(written[id])-1].Seq
		ev := memEvent(id, 40, domain.MemoryReinforced{Delta: 0.02})
		first, err := s.Append(ctx, expected, ev)
		require.NoError(t, err)
		require.False(t, first.Duplicate)
		stored := ev
		stored.Seq = first.Seq
		written[id] = append(written[id], stored)
		before := lastSeq(t, s)

		// The same event at the memory's new position: the server drops it by its id.
		res, err := s.Append(ctx, first.Seq, ev)
		require.NoError(t, err)
		require.Equal(t, eventstore.Appended{Seq: first.Seq, Duplicate: true}, res)
		// The exact retry, with the position it was first appended at: refused by the
		// server, it is recognised by the event's id in the memory's events, read from any
		// replica (see waitReplicated).
		waitReplicated(t, servers, first.Seq)
		res, err = s.Append(ctx, expected, ev)
		require.NoError(t, err)
		require.Equal(t, eventstore.Appended{Seq: first.Seq, Duplicate: true}, res)
		// Unchecked, twice.
		fact := memEvent(id, 41, domain.MemoryReinforced{Delta: 0.03})
		first, err = s.Append(ctx, eventstore.Unchecked, fact)
		require.NoError(t, err)
		require.False(t, first.Duplicate)
		res, err = s.Append(ctx, eventstore.Unchecked, fact)
		require.NoError(t, err)
		require.Equal(t, eventstore.Appended{Seq: first.Seq, Duplicate: true}, res)
		fact.Seq = first.Seq
		written[id] = append(written[id], fact)

		require.Equal(t, before+1, lastSeq(t, s), "each event is stored once")
		load(t, id)
	})

	t.Run("Follow", func(t *testing.T) {
		last := lastSeq(t, s)
		out := make(chan domain.Event, 64)
		cancel, errc := follow(t, s, 1, out)
		started := time.Now()
		got := receiveFollowed(t, out, errc, int(last))
		if d := time.Since(started); d > time.Second {
			t.Logf("the first events took %v (see followTimeout)", d.Round(time.Millisecond))
		}
		want := make([]uint64, last)
		for i := range want {
			want[i] = uint64(i + 1)
		}
		require.Equal(t, want, seqs(got), "every event, in log order")
		byMemory := map[string][]domain.Event{}
		for _, ev := range got {
			byMemory[ev.AggregateID] = append(byMemory[ev.AggregateID], ev)
		}
		require.Equal(t, written, byMemory)

		// An event appended while following arrives next.
		ev := memEvent(id, 50, domain.MemoryReinforced{Delta: 0.04})
		res, err := s.Append(t.Context(), written[id][len(written[id])-1].Seq, ev)
		require.NoError(t, err)
		require.Equal(t, last+1, res.Seq)
		ev.Seq = res.Seq
		written[id] = append(written[id], ev)
		require.Equal(t, []domain.Event{ev}, receiveFollowed(t, out, errc, 1))

		cancel()
		require.ErrorIs(t, waitErr(t, errc), context.Canceled)
	})

	t.Run("LeaderFailover", func(t *testing.T) {
		ctx := t.Context()
		before := lastSeq(t, s)

		// The stream's leader is the server the store is connected to, so that its death also
		// makes the client reconnect to a surviving server.
		leader := leadFromConnected(t, s, clusterSize-1)
		var dead *server.Server
		for _, srv := range servers {
			if srv.Name() == leader {
				dead = srv
			}
		}
		require.NotNil(t, dead, "no server named %s", leader)
		reconnects := s.Conn().Stats().Reconnects

		killed := time.Now()
		dead.Shutdown()
		dead.WaitForShutdown()

		// A new leader among the two others, with the last one as its only current replica.
		newLeader := waitForStreamLeader(t, s, 1, func(l string) bool { return l != leader })
		t.Logf("stream leader %s shut down; %s leads after %v, client on %s", leader, newLeader,
			time.Since(killed).Round(time.Millisecond), s.Conn().ConnectedServerName())
		require.NotEqual(t, leader, s.Conn().ConnectedServerName(), "the client is on a surviving server")
		require.Greater(t, s.Conn().Stats().Reconnects, reconnects, "the client reconnected")

		// The earlier events are intact, and appends go on through the same store.
		require.Equal(t, before, lastSeq(t, s))
		for m := range written {
			load(t, m)
		}
		expected := written[id][len(written[id])-1].Seq
		ev := memEvent(id, 60, domain.MemoryInvalidated{})
		res, err := s.Append(ctx, expected, ev)
		require.NoError(t, err)
		require.Equal(t, eventstore.Appended{Seq: before + 1}, res)
		ev.Seq = res.Seq
		written[id] = append(written[id], ev)
		require.Equal(t, before+1, load(t, id))
		_, err = s.Append(ctx, expected, memEvent(id, 61, domain.MemoryReinforced{Delta: 0.1}))
		codes[conflictCode(t, err)]++

		// A new memory too.
		created := memEvent(newMemoryID(), 62, createdPayload(domain.StatusActive))
		res, err = s.Append(ctx, 0, created)
		require.NoError(t, err)
		require.Equal(t, eventstore.Appended{Seq: before + 2}, res)
		created.Seq = res.Seq
		written[created.AggregateID] = []domain.Event{created}
		require.Equal(t, before+2, load(t, created.AggregateID))
		require.Equal(t, before+2, lastSeq(t, s))
	})
}
