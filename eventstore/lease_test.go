package eventstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/eventstore/eventstoretest"
)

// instanceStore opens a store on the external server at url, as one instance's.
func instanceStore(t *testing.T, url string, ttl time.Duration) *eventstore.Store {
	t.Helper()
	s := eventstore.New(t.TempDir())
	s.URL, s.LeaseTTL = url, ttl
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLeaseOneHolderAtATime(t *testing.T) {
	url := eventstoretest.StartServer(t)
	// Renewals get ttl/6 each: enough on a loaded machine.
	const ttl = 3 * time.Second
	stores := []*eventstore.Store{instanceStore(t, url, ttl), instanceStore(t, url, ttl), instanceStore(t, url, ttl)}

	// Three instances take turns, each holding the lease a while, longer than its TTL (it is
	// renewed): never two at once.
	var holding, most, turns atomic.Int32
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			for range 2 {
				l, err := s.AcquireLease(t.Context(), "nightly", string(rune('a'+i)), 20*time.Millisecond)
				require.NoError(t, err)
				n := holding.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				select {
				case <-l.Lost():
					t.Errorf("lease lost while held: %v", l.Err())
				case <-time.After(ttl + 200*time.Millisecond):
				}
				holding.Add(-1)
				turns.Add(1)
				require.NoError(t, l.Release(t.Context()))
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(6), turns.Load())
	require.Equal(t, int32(1), most.Load(), "two instances held the lease at once")
}

func TestLeaseExpiresWhenItsHolderDies(t *testing.T) {
	url := eventstoretest.StartServer(t)
	const ttl = time.Second
	a, b := instanceStore(t, url, ttl), instanceStore(t, url, ttl)
	la, ok, err := a.TryAcquireLease(t.Context(), "nightly", "a")
	require.NoError(t, err)
	require.True(t, ok)
	holder, err := b.LeaseHolder(t.Context(), "nightly")
	require.NoError(t, err)
	require.Equal(t, "a", holder)
	_, ok, err = b.TryAcquireLease(t.Context(), "nightly", "b")
	require.NoError(t, err)
	require.False(t, ok, "held by a")

	// a dies: its connection goes without a release, and its renewals stop. It knows it has
	// lost the lease, and says why, before b can take it: b tries from the moment a dies.
	a.Close()
	var lostAt time.Time
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		<-la.Lost()
		lostAt = time.Now()
	}()
	var (
		l          *eventstore.Lease
		acquiredAt time.Time
	)
	require.Eventually(t, func() bool {
		tried := time.Now()
		l, ok, err = b.TryAcquireLease(t.Context(), "nightly", "b")
		require.NoError(t, err)
		if ok {
			// b took it no sooner than this attempt was made.
			acquiredAt = tried
		}
		return ok
	}, 30*time.Second, 50*time.Millisecond, "the lease of a holder that died expires")
	select {
	case <-lost:
	case <-time.After(30 * time.Second):
		t.Fatal("a holder cut off from the server does not give its lease up")
	}
	require.ErrorContains(t, la.Err(), "not renewed for")
	require.True(t, lostAt.Before(acquiredAt), "a gave the lease up at %s, after b's attempt that took it began at %s: two holders at once",
		lostAt.Format(time.StampMicro), acquiredAt.Format(time.StampMicro))
	holder, err = b.LeaseHolder(t.Context(), "nightly")
	require.NoError(t, err)
	require.Equal(t, "b", holder)
	require.NoError(t, l.Release(t.Context()))
	holder, err = b.LeaseHolder(t.Context(), "nightly")
	require.NoError(t, err)
	require.Equal(t, "", holder, "released")
}

// A renewal that timed out on its way back but was applied leaves the holder expecting an old
// revision: the holder finds its own value in the key and goes on from the key's revision. A
// key written by another holder ends the lease.
func TestLeaseAdoptsItsOwnValueAtANewRevision(t *testing.T) {
	url := eventstoretest.StartServer(t)
	const ttl = 3 * time.Second
	a := instanceStore(t, url, ttl)
	l, ok, err := a.TryAcquireLease(t.Context(), "nightly", "a")
	require.NoError(t, err)
	require.True(t, ok)
	kv, err := a.JetStream().KeyValue(t.Context(), eventstore.LeaseBucket(a.Stream))
	require.NoError(t, err)
	e, err := kv.Get(t.Context(), "nightly")
	require.NoError(t, err)

	// The applied renewal whose answer was lost: the holder's own value, at a revision it has
	// not seen.
	rev, err := kv.Put(t.Context(), "nightly", e.Value())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		now, err := kv.Get(t.Context(), "nightly")
		return err == nil && now.Revision() > rev
	}, 10*time.Second, 20*time.Millisecond, "the holder renews from the key's revision")
	select {
	case <-l.Lost():
		t.Fatalf("lease lost: %v", l.Err())
	default:
	}

	// Another holder's value: the lease is lost at the next renewal, and says why.
	_, err = kv.Put(t.Context(), "nightly", []byte(`{"holder":"b"}`))
	require.NoError(t, err)
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("a lease taken by another holder is still held")
	}
	require.ErrorContains(t, l.Err(), "lease nightly lost")
	require.NoError(t, l.Release(t.Context()), "releasing a lost lease deletes nothing")
	holder, err := a.LeaseHolder(t.Context(), "nightly")
	require.NoError(t, err)
	require.Equal(t, "b", holder)
}

// A try that fails (the cluster has lost its quorum, so the key cannot be created and the
// request times out) does not end the wait: AcquireLease tries again and takes the lease once
// the cluster is back.
func TestLeaseWaitOutlastsAClusterWithoutQuorum(t *testing.T) {
	c := eventstoretest.StartCluster(t, 3)
	s := eventstore.New(t.TempDir())
	s.URL, s.Replicas, s.LeaseTTL = c.URLs(), 3, 3*time.Second
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	l, err := s.AcquireLease(t.Context(), "nightly", "a", 20*time.Millisecond)
	require.NoError(t, err)
	require.NoError(t, l.Release(t.Context()))

	c.Kill("n2")
	c.Kill("n3")
	_, _, err = s.TryAcquireLease(t.Context(), "nightly", "a")
	require.Error(t, err, "no quorum, no lease")

	got := make(chan error, 1)
	go func() {
		l, err := s.AcquireLease(t.Context(), "nightly", "a", 100*time.Millisecond)
		if err == nil {
			err = l.Release(t.Context())
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("the wait ended without a quorum: %v", err)
	case <-time.After(time.Second):
	}
	c.Restart("n2")
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(90 * time.Second):
		t.Fatal("no lease once the cluster has its quorum again")
	}
}

// startAccountsServer starts a NATS server with JetStream whose users are in accounts of their
// own: "limited" may keep one stream (the log, so no lease bucket), "denied" may not touch the
// lease bucket's stream. It returns the server's URL.
func startAccountsServer(t *testing.T) string {
	t.Helper()
	bucket := eventstore.LeaseBucket("LEDGER")
	conf := filepath.Join(t.TempDir(), "nats.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
listen: "127.0.0.1:-1"
jetstream { store_dir: %q }
accounts {
  LIMITED { jetstream { max_streams: 1 }, users: [{ user: limited, password: secret }] }
  DENIED {
    jetstream: enabled
    users: [{ user: denied, password: secret, permissions: { publish: { deny: [
      "$JS.API.STREAM.CREATE.KV_%[2]s", "$JS.API.STREAM.UPDATE.KV_%[2]s", "$JS.API.STREAM.INFO.KV_%[2]s"
    ] } } }]
  }
}
`, t.TempDir(), bucket)), 0o600))
	opts, err := server.ProcessConfigFile(conf)
	require.NoError(t, err)
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "the NATS server is not ready")
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv.ClientURL()
}

// A lease the server refuses for good (the account may keep no more streams, or the user may
// not make the lease bucket) ends the wait at once with an error that says why, instead of
// retrying until the caller's deadline (a nightly run's is 30 minutes).
func TestLeaseRefusedForGoodFailsFast(t *testing.T) {
	url := startAccountsServer(t)
	for _, tc := range []struct{ user, why string }{
		{"limited", "maximum number of streams reached"},
		{"denied", "ermissions"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			s := eventstore.New(t.TempDir())
			s.URL, s.User, s.Password = url, tc.user, "secret"
			require.NoError(t, s.Open(t.Context()))
			t.Cleanup(func() { s.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			_, err := s.AcquireLease(ctx, "nightly", "a", 20*time.Millisecond)
			require.ErrorIs(t, err, eventstore.ErrLeaseRefused)
			require.ErrorContains(t, err, tc.why)
			require.NoError(t, ctx.Err(), "the wait ran to its deadline")
		})
	}
}

// A lease bucket deleted under an instance that had opened it (an operator's clean-up, a
// restore) is made again by its next try: its key writes answer "no responders", which makes
// the store forget the bucket it had opened.
func TestLeaseBucketDeletedIsMadeAgain(t *testing.T) {
	url := eventstoretest.StartServer(t)
	s := instanceStore(t, url, 3*time.Second)
	l, err := s.AcquireLease(t.Context(), "nightly", "a", 20*time.Millisecond)
	require.NoError(t, err)
	require.NoError(t, l.Release(t.Context()))

	require.NoError(t, s.JetStream().DeleteKeyValue(t.Context(), eventstore.LeaseBucket(s.Stream)))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l, err = s.AcquireLease(ctx, "nightly", "a", 20*time.Millisecond)
	require.NoError(t, err, "the lease of a deleted bucket")
	holder, err := s.LeaseHolder(t.Context(), "nightly")
	require.NoError(t, err)
	require.Equal(t, "a", holder)
	require.NoError(t, l.Release(t.Context()))
}
