package eventstore_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

func TestRestartKeepsTheLog(t *testing.T) {
	for _, fsync := range fsyncModes {
		t.Run("fsync="+fsync, func(t *testing.T) {
			dir := t.TempDir()
			s := openStoreAt(t, dir, fsync)
			ctx := t.Context()
			id, seq := appendCreated(t, s, domain.StatusCandidate)
			evs := []domain.Event{
				memEvent(id, 1, domain.MemoryReinforced{Delta: 0.1}),
				memEvent(id, 2, domain.MemoryPromoted{}),
			}
			_, err := s.Append(ctx, seq, evs...)
			require.NoError(t, err)
			appendCreated(t, s, domain.StatusActive)
			wantLast := lastSeq(t, s)
			want, wantSeq, err := s.Load(ctx, "memory", id)
			require.NoError(t, err)
			require.NoError(t, s.Close())

			s = openStoreAt(t, dir, fsync)
			require.Equal(t, wantLast, lastSeq(t, s))
			got, gotSeq, err := s.Load(ctx, "memory", id)
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Equal(t, wantSeq, gotSeq)

			// The duplicate window and the per-subject sequences survive the restart.
			res, err := s.Append(ctx, gotSeq, evs[1])
			require.NoError(t, err)
			require.Equal(t, eventstore.Appended{Seq: evs[1].Seq, Duplicate: true}, res)
			_, err = s.Append(ctx, seq, memEvent(id, 3, domain.MemoryReinforced{Delta: 0.1}))
			require.ErrorIs(t, err, domain.ErrConflict)
			res, err = s.Append(ctx, gotSeq, memEvent(id, 3, domain.MemoryReinforced{Delta: 0.1}))
			require.NoError(t, err)
			require.Equal(t, wantLast+1, res.Seq)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*eventstore.Store)
		message string
	}{
		{"unknown fsync mode", func(s *eventstore.Store) { s.Fsync = "sometimes" }, `fsync must be "always" or "interval", got "sometimes"`},
		{"replicas without a cluster", func(s *eventstore.Store) { s.Replicas = 3 }, "replicas 3 needs an external cluster"},
		{"no replicas", func(s *eventstore.Store) { s.Replicas = 0 }, "replicas must be between 1 and 5, got 0"},
		{"too many replicas", func(s *eventstore.Store) { s.Replicas = 7; s.URL = "nats://127.0.0.1:4222" }, "replicas must be between 1 and 5, got 7"},
		{"listen address without a port", func(s *eventstore.Store) { s.Listen = "127.0.0.1"; s.User = "u" }, `nats listen address "127.0.0.1"`},
		{"listen port not a number", func(s *eventstore.Store) { s.Listen = "localhost:http"; s.User, s.Password = "u", "p" }, `port "http" is not a number`},
		{"listen without credentials", func(s *eventstore.Store) { s.Listen = "127.0.0.1:0" }, "set a user and a password"},
		{"listen with the internal user's name", func(s *eventstore.Store) { s.Listen = "127.0.0.1:0"; s.User, s.Password = "memledger-internal", "p" }, "reserved"},
		{"unreachable server", func(s *eventstore.Store) { s.URL = "nats://127.0.0.1:1" }, "connect to nats nats://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := eventstore.New(t.TempDir())
			tt.set(s)
			err := s.Open(t.Context())
			require.ErrorContains(t, err, tt.message)
			require.Nil(t, s.Conn())
			require.NoError(t, s.Close())
		})
	}
}

// startServer starts a NATS server with JetStream on a random loopback port, as an external
// server would be, and stops it when the test ends.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoSigs:    true,
		NoLog:     true,
	})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "nats server not ready")
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

func TestExternalServer(t *testing.T) {
	srv := startServer(t)

	s := eventstore.New(t.TempDir())
	s.URL = srv.ClientURL()
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	require.Empty(t, s.ClientURL(), "an external store has no embedded server")
	require.Equal(t, srv.ClientURL(), s.Conn().ConnectedUrl())

	id, seq := appendCreated(t, s, domain.StatusCandidate)
	_, err := s.Append(t.Context(), seq, memEvent(id, 1, domain.MemoryPromoted{}))
	require.NoError(t, err)
	evs, last, err := s.Load(t.Context(), "memory", id)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, uint64(2), last)
	_, err = s.Append(t.Context(), seq, memEvent(id, 2, domain.MemoryReinforced{Delta: 0.1}))
	require.ErrorIs(t, err, domain.ErrConflict)

	// The stream is on the external server.
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	info, err := js.StreamInfo(eventstore.DefaultStream)
	require.NoError(t, err)
	require.Equal(t, uint64(2), info.State.Msgs)
	require.True(t, info.Config.DenyDelete)
	require.True(t, info.Config.DenyPurge)
	require.Equal(t, eventstore.DefaultDuplicateWindow, info.Config.Duplicates)

	// Closing the store leaves the external server running.
	require.NoError(t, s.Close())
	require.True(t, srv.Running())
}

func TestListen(t *testing.T) {
	s := eventstore.New(t.TempDir())
	s.Fsync = eventstore.FsyncInterval
	s.Listen = "127.0.0.1:0"
	s.User, s.Password = "ledger", "s3cret"
	s.Logger = slog.New(slog.DiscardHandler) // the refused clients below are logged as errors
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })

	url := s.ClientURL()
	require.NotEmpty(t, url)
	require.NotEqual(t, "nats://127.0.0.1:0", url)

	_, err := nats.Connect(url, nats.MaxReconnects(0))
	require.Error(t, err, "a client without credentials is refused")
	_, err = nats.Connect(url, nats.UserInfo("ledger", "wrong"), nats.MaxReconnects(0))
	require.Error(t, err, "a client with a wrong password is refused")

	denied := make(chan error, 16)
	nc, err := nats.Connect(url, nats.UserInfo("ledger", "s3cret"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied <- err }))
	require.NoError(t, err)
	defer nc.Close()
	sub, err := nc.SubscribeSync("ledger.alert.>")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	ev := domain.NewEvent("warning", domain.Meta{EventID: newMemoryID(), Actor: "test", Time: t0},
		domain.AlertRaised{Severity: domain.SeverityWarning, Title: "disk low"})
	res, err := s.Append(t.Context(), eventstore.Unchecked, ev)
	require.NoError(t, err)

	msg, err := sub.NextMsg(10 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "ledger.alert.warning", msg.Subject)
	got, err := eventstore.Decode(msg.Data, res.Seq)
	require.NoError(t, err)
	ev.Seq = res.Seq
	require.Equal(t, ev, got)

	// The subscribers' user reads alerts through a consumer of its own on the alerts stream...
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.CreateOrUpdateConsumer(t.Context(), eventstore.AlertsStream(eventstore.DefaultStream), jetstream.ConsumerConfig{
		Durable: "watcher", FilterSubject: "ledger.alert.>", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var fetched []string
	for m := range batch.Messages() {
		fetched = append(fetched, m.Subject())
		require.NoError(t, m.Ack())
	}
	require.Equal(t, []string{"ledger.alert.warning"}, fetched)

	// ...and can do nothing else: not read memories, not write to the log, not touch the stream.
	// A refused request goes unanswered, so each gets a short deadline.
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	_, err = js.CreateOrUpdateConsumer(short(), eventstore.DefaultStream, jetstream.ConsumerConfig{
		Durable: "snoop", FilterSubject: "ledger.memory.>"})
	require.Error(t, err, "a consumer on memories is refused")
	_, err = js.CreateOrUpdateConsumer(short(), eventstore.DefaultStream, jetstream.ConsumerConfig{
		Durable: "snoop", FilterSubject: "ledger.alert.>"})
	require.Error(t, err, "a consumer on the log's stream is refused, even on alerts")
	_, err = js.CreateOrUpdateConsumer(short(), eventstore.AlertsStream(eventstore.DefaultStream), jetstream.ConsumerConfig{
		Durable: "many", FilterSubjects: []string{"ledger.alert.critical", "ledger.alert.warning"}})
	require.NoError(t, err, "the alerts stream holds alerts only, so any filter on it stays within them")
	require.Error(t, js.DeleteStream(short(), eventstore.DefaultStream), "deleting the stream is refused")
	_, err = js.Publish(short(), "ledger.memory.forged", []byte("{}"))
	require.Error(t, err, "writing to the log is refused")
	_, err = nc.SubscribeSync("ledger.memory.>")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	select {
	case err := <-denied:
		require.ErrorContains(t, err, "Permissions Violation")
	case <-time.After(5 * time.Second):
		t.Fatal("subscribing to memories was not refused")
	}
	last, err := s.LastSeq(t.Context())
	require.NoError(t, err)
	require.Equal(t, res.Seq, last, "nothing was written")
	_, err = s.JetStream().Stream(t.Context(), eventstore.DefaultStream)
	require.NoError(t, err, "the stream is still there")

	// A store without Listen does not listen.
	require.Empty(t, openStore(t, eventstore.FsyncInterval).ClientURL())
}
