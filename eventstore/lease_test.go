package eventstore_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/eventstore"
)

// startExternal starts a NATS server with JetStream on loopback, as an external server the
// stores of several memledger instances share, and stops it when the test ends.
func startExternal(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

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
	srv := startExternal(t)
	const ttl = time.Second
	stores := []*eventstore.Store{instanceStore(t, srv.ClientURL(), ttl), instanceStore(t, srv.ClientURL(), ttl), instanceStore(t, srv.ClientURL(), ttl)}

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
				case <-time.After(1200 * time.Millisecond):
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
	srv := startExternal(t)
	const ttl = time.Second
	a, b := instanceStore(t, srv.ClientURL(), ttl), instanceStore(t, srv.ClientURL(), ttl)
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
	// lost the lease, and says why.
	a.Close()
	select {
	case <-la.Lost():
		require.ErrorContains(t, la.Err(), "not renewed for")
	case <-time.After(30 * time.Second):
		t.Fatal("a holder cut off from the server does not give its lease up")
	}
	var l *eventstore.Lease
	require.Eventually(t, func() bool {
		l, ok, err = b.TryAcquireLease(t.Context(), "nightly", "b")
		require.NoError(t, err)
		return ok
	}, 30*time.Second, 50*time.Millisecond, "the lease of a holder that died expires")
	holder, err = b.LeaseHolder(t.Context(), "nightly")
	require.NoError(t, err)
	require.Equal(t, "b", holder)
	require.NoError(t, l.Release(t.Context()))
	holder, err = b.LeaseHolder(t.Context(), "nightly")
	require.NoError(t, err)
	require.Equal(t, "", holder, "released")
}
