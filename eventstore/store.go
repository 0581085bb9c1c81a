// Package eventstore keeps the ledger's events in a NATS JetStream stream: it starts an
// embedded server (the default) or connects to an external one, appends events with
// per-aggregate optimistic concurrency and idempotency, loads one aggregate's events and
// follows the whole log.
package eventstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Fsync modes of the embedded server.
const (
	// FsyncAlways syncs every message to disk before it is acknowledged.
	FsyncAlways = "always"
	// FsyncInterval leaves syncing to the server's periodic flush (every two minutes by
	// default): faster, but an acknowledged event can be lost if the machine loses power.
	FsyncInterval = "interval"
)

// Default settings.
const (
	DefaultStream          = "LEDGER"
	DefaultDuplicateWindow = 2 * time.Minute
)

// Store is the ledger's log. Set its fields, then call Open.
type Store struct {
	// Dir is the data directory; the embedded server keeps its files under Dir/nats.
	Dir string
	// URL, when set, connects to an external NATS server or cluster instead of embedding one.
	URL string
	// Replicas is the stream's replica count (1 unless the cluster has more servers).
	Replicas int
	// Fsync is FsyncAlways (the default) or FsyncInterval; it applies to the embedded server.
	Fsync string
	// Listen, when set, makes the embedded server accept TCP clients on this host:port.
	Listen string
	// User and Password, when set, are required of every client of the embedded server and
	// are used to connect to an external one.
	User, Password string
	// Stream is the stream's name (DefaultStream).
	Stream string
	// DuplicateWindow is how long the server remembers event ids to drop duplicates.
	DuplicateWindow time.Duration
	// LeaseTTL is how long a lease outlives its holder's last renewal (DefaultLeaseTTL when 0).
	LeaseTTL time.Duration
	// Lost are positions an operator accepted as lost from the log: Follow passes over them
	// instead of stopping with ErrGap.
	Lost []domain.SeqRange
	// ReviveFree is the free space the log's disk must have before the embedded server's
	// JetStream, switched off by a full disk, is switched back on (DefaultReviveFree when 0);
	// ReviveInterval is how often that is looked at (DefaultReviveInterval when 0).
	ReviveFree     uint64
	ReviveInterval time.Duration
	Logger         *slog.Logger
	// Stored, when set, is called after each event an Append or AppendFor wrote (not one the
	// log already held), with the event as Follow delivers it: decoded from the bytes stored,
	// its position set. The projections' runner takes it from there instead of waiting for the
	// log to deliver it, and may apply it there and then (projections.Runner.Offer): it runs in
	// the appending goroutine, before the append returns, and must not wait for the appender.
	// Set it before the first append.
	Stored func(ev domain.Event)

	appends appendFailures
	// checked is the position up to which every event was read back from the log whole (see
	// Checked).
	checked atomic.Uint64
	revive  *revival
	leases  leaseBucketCache
	// refused is the server's last refusal of a subject to this connection, and when.
	refused atomic.Pointer[stampedError]

	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
}

// New returns a Store for the data directory dir with the default settings.
func New(dir string) *Store {
	return &Store{
		Dir:             dir,
		Replicas:        1,
		Fsync:           FsyncAlways,
		Stream:          DefaultStream,
		DuplicateWindow: DefaultDuplicateWindow,
		Logger:          slog.Default(),
	}
}

// Open starts or connects to the server and creates or updates the stream.
func (s *Store) Open(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.connect(); err != nil {
		s.Close()
		return err
	}
	if err := s.createStream(ctx); err != nil {
		s.Close()
		return err
	}
	return nil
}

// check checks the store's settings.
func (s *Store) check() error {
	if s.Fsync != FsyncAlways && s.Fsync != FsyncInterval {
		return fmt.Errorf("fsync must be %q or %q, got %q", FsyncAlways, FsyncInterval, s.Fsync)
	}
	if s.Replicas < 1 || s.Replicas > 5 {
		return fmt.Errorf("replicas must be between 1 and 5, got %d", s.Replicas)
	}
	if s.Listen != "" {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			return fmt.Errorf("nats listen address %q: %w", s.Listen, err)
		}
	}
	if s.Listen != "" && s.URL == "" && (s.User == "" || s.Password == "") {
		return fmt.Errorf("nats listen address %s: set a user and a password (--nats-user, --nats-password) for the subscribers that connect to it", s.Listen)
	}
	if s.URL == "" && s.Replicas != 1 {
		return fmt.Errorf("replicas %d needs an external cluster (--nats-url); the embedded server is a single node", s.Replicas)
	}
	return nil
}

// InboxPrefix is the prefix of memledger's own reply subjects (JetStream API answers, consumer
// deliveries, direct gets). The subscribers' user may subscribe to the default "_INBOX.>" for
// its own requests, never to this prefix, so it cannot read what memledger's connection reads.
const InboxPrefix = "_MEMLEDGER_INBOX"

// AlertsStream is the name of the stream that mirrors the alert subjects of stream, for the
// subscribers of the embedded server's listener: their consumers live there, apart from
// memledger's own consumers (the alert sinks, the projections), which live on stream.
func AlertsStream(stream string) string { return stream + "_ALERTS" }

// maxSubscriberConsumers bounds the consumers the subscribers' user may create.
const maxSubscriberConsumers = 64

// SubscriberPermissions are what the user of the embedded server's listener may do: subscribe
// to alerts as they are published, and create, read, pull from, acknowledge and delete
// consumers of the alerts stream (AlertsStream), which holds alerts and nothing else. It cannot
// reach the log's stream at all: not its messages, not memledger's consumers on it (the alert
// sinks, the projections), not its configuration. NATS permissions match whole subject tokens,
// and a consumer's name is one token, so a name prefix cannot be enforced on the log's stream:
// a stream of the subscribers' own is how the server keeps them apart.
func SubscriberPermissions(stream string) *server.Permissions {
	api, alerts := "$JS.API.", AlertsStream(stream)
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			api + "INFO",
			api + "STREAM.INFO." + alerts,
			api + "CONSUMER.CREATE." + alerts + ".>",
			api + "CONSUMER.DURABLE.CREATE." + alerts + ".*",
			api + "CONSUMER.INFO." + alerts + ".*",
			api + "CONSUMER.DELETE." + alerts + ".*",
			api + "CONSUMER.MSG.NEXT." + alerts + ".*",
			api + "CONSUMER.NAMES." + alerts,
			api + "CONSUMER.LIST." + alerts,
			"$JS.ACK." + alerts + ".>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{AlertSubjects, "_INBOX.>"}},
	}
}

func (s *Store) connect() error {
	opts := []nats.Option{nats.Name("memledger"), nats.MaxReconnects(-1), nats.CustomInboxPrefix(InboxPrefix),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				s.refused.Store(&stampedError{at: time.Now(), err: err})
			}
		})}
	if s.URL != "" {
		if s.User != "" {
			opts = append(opts, nats.UserInfo(s.User, s.Password))
		}
		nc, err := nats.Connect(s.URL, opts...)
		if err != nil {
			return fmt.Errorf("connect to nats %s: %w", s.URL, err)
		}
		s.nc = nc
	} else {
		internal, err := s.startServer()
		if err != nil {
			return err
		}
		if internal != nil {
			opts = append(opts, nats.UserInfo(internal.Username, internal.Password))
		}
		nc, err := nats.Connect("", append(opts, nats.InProcessServer(s.srv))...)
		if err != nil {
			return fmt.Errorf("connect to embedded nats: %w", err)
		}
		s.nc = nc
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	s.js = js
	return nil
}

// startServer starts the embedded server. When it listens, it has two users: memledger's own,
// with a password made up for this run and every right, and the subscribers', with
// SubscriberPermissions; startServer returns the first.
func (s *Store) startServer() (*server.User, error) {
	opts := &server.Options{
		ServerName: "memledger",
		JetStream:  true,
		StoreDir:   filepath.Join(s.Dir, "nats"),
		DontListen: true,
		NoSigs:     true,
		SyncAlways: s.Fsync == FsyncAlways,
	}
	var internal *server.User
	if s.Listen != "" {
		host, port, err := net.SplitHostPort(s.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: %w", s.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: port %q is not a number", s.Listen, port)
		}
		opts.DontListen, opts.Host, opts.Port = false, host, p
		if p == 0 {
			opts.Port = server.RANDOM_PORT
		}
		secret := make([]byte, 24)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		internal = &server.User{Username: "memledger-internal", Password: hex.EncodeToString(secret)}
		if s.User == internal.Username {
			return nil, fmt.Errorf("nats user %q is reserved for memledger itself", s.User)
		}
		opts.Users = []*server.User{internal,
			{Username: s.User, Password: s.Password, Permissions: SubscriberPermissions(s.Stream)}}
	}
	dropOutdatedStreamStates(opts.StoreDir, s.Logger)
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.SetLoggerV2(serverLog{s.Logger.With("component", "nats")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded nats: not ready after 30s (is the data directory used by another process?)")
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats: jetstream did not start on %s (see the log above)", opts.StoreDir)
	}
	s.srv = srv
	s.startRevival()
	return internal, nil
}

func (s *Store) createStream(ctx context.Context) error {
	cfg := jetstream.StreamConfig{
		Name:        s.Stream,
		Description: "memledger: every memory mutation, alert and job result",
		Subjects:    []string{SubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    s.Replicas,
		Duplicates:  s.DuplicateWindow,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	}
	st, err := s.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create stream %s: %w", s.Stream, err)
	}
	s.stream = st
	if s.Listen != "" && s.URL == "" {
		return s.createAlertsStream(ctx)
	}
	return nil
}

// createAlertsStream creates the mirror of the alert subjects that the listener's subscribers
// read through consumers of their own.
func (s *Store) createAlertsStream(ctx context.Context) error {
	name := AlertsStream(s.Stream)
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:         name,
		Description:  "memledger: the alerts of " + s.Stream + ", for subscribers outside the process",
		Mirror:       &jetstream.StreamSource{Name: s.Stream, FilterSubject: AlertSubjects},
		Storage:      jetstream.FileStorage,
		Retention:    jetstream.LimitsPolicy,
		Replicas:     1,
		MaxConsumers: maxSubscriberConsumers,
		DenyDelete:   true,
		DenyPurge:    true,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return nil
}

// ClientURL is the address TCP clients of the embedded server connect to, or "" when it does
// not listen (or the store is external).
func (s *Store) ClientURL() string {
	if s.srv == nil || s.Listen == "" {
		return ""
	}
	return s.srv.ClientURL()
}

// Conn is the store's NATS connection, for subscribers and request handlers.
func (s *Store) Conn() *nats.Conn { return s.nc }

// JetStream is the store's JetStream context, for durable consumers of the log.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// LastSeq is the log position of the last event in the stream.
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// Close closes the connection and then stops the embedded server, in that order so that the
// in-process client does not try to reconnect.
func (s *Store) Close() error {
	if s.nc != nil {
		s.nc.Close()
		s.nc = nil
	}
	s.stopRevival()
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
	return nil
}
