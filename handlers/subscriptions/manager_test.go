package subscriptions_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// managed is a log with the subscriptions projection kept live and a Manager reading it.
type managed struct {
	t      *testing.T
	store  *eventstore.Store
	runner *projections.Runner
	db     *projections.DB
	mgr    *subscriptions.Manager
	keys   *subscriptions.Keyring
}

func newManaged(t *testing.T) *managed {
	store, st := openLog(t)
	dir := t.TempDir()
	db, err := projections.Open(filepath.Join(dir, "p.db"), true)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	r := &projections.Runner{DB: db, Source: store, Projections: []projections.Projection{projections.Subscriptions{}},
		Logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, r.Init())
	keys, err := subscriptions.LoadKeyring(filepath.Join(dir, subscriptions.KeyFileName))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	rdone, mdone := make(chan struct{}), make(chan struct{})
	go func() { r.Run(ctx); close(rdone) }()
	mgr := &subscriptions.Manager{Stream: st, List: db, Keyring: keys, Backoff: 20 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond, Interval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	go func() { mgr.Run(ctx); close(mdone) }()
	t.Cleanup(func() { cancel(); <-mdone; <-rdone })
	return &managed{t: t, store: store, runner: r, db: db, mgr: mgr, keys: keys}
}

// write publishes a subscription event and waits for the projection.
func (m *managed) write(id string, p domain.Payload) uint64 {
	m.t.Helper()
	_, seq := publish(m.t, m.store, id, p)
	require.NoError(m.t, m.runner.WaitFor(m.t.Context(), seq))
	// Reconciled here, not on the manager's next tick: a pause must have stopped the
	// delivering feed before the test writes what the paused one must hold back.
	require.NoError(m.t, m.mgr.Reconcile(m.t.Context()))
	return seq
}

func (m *managed) status(id string) subscriptions.Status {
	s, err := m.db.Subscription(id)
	require.NoError(m.t, err)
	return m.mgr.Status(m.t.Context(), s)
}

func TestManagerFollowsTheSubscriptions(t *testing.T) {
	m := newManaged(t)
	rec := newReceiver(t, "whsec-m")
	id := uuid.NewString()
	sealed, err := m.keys.Seal(id, []byte("whsec-m"))
	require.NoError(t, err)
	var ws []want
	for i := 0; i < 2; i++ {
		eid, seq := publishMemory(t, m.store)
		ws = append(ws, want{eid, seq})
		publishAlert(t, m.store)
	}
	m.write(id, domain.SubscriptionRegistered{URL: rec.URL(), Subjects: []string{"ledger.memory.>"},
		From: domain.Position{Kind: domain.PositionBeginning}, SealedSecret: sealed, KeyID: m.keys.ID})
	requireInOrder(t, ws, rec.waitFor(2))
	require.Eventually(t, func() bool { st := m.status(id); return st.Lag == 0 && st.Position == ws[1].seq }, 10*time.Second, 10*time.Millisecond)

	// Paused: nothing delivered, the lag grows; resumed: delivered in order.
	m.write(id, domain.SubscriptionPaused{})
	require.Eventually(t, func() bool { return m.status(id).Error == "" }, 10*time.Second, 10*time.Millisecond)
	for i := 0; i < 3; i++ {
		eid, seq := publishMemory(t, m.store)
		ws = append(ws, want{eid, seq})
	}
	require.Eventually(t, func() bool { return m.status(id).Lag == 3 }, 30*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, rec.deliveries(), 2)
	m.write(id, domain.SubscriptionResumed{})
	requireInOrder(t, ws, rec.waitFor(5))

	// Reset to the beginning: a new consumer delivers the backfill, the old one is gone.
	gen := m.write(id, domain.SubscriptionReset{From: domain.Position{Kind: domain.PositionBeginning}})
	ds := rec.waitFor(10)
	requireInOrder(t, ws, ds[:5])
	requireInOrder(t, ws, ds[5:])
	st, err := m.store.JetStream().Stream(t.Context(), m.store.Stream)
	require.NoError(t, err)
	consumers := func() []string {
		var out []string
		names := st.ConsumerNames(t.Context())
		for n := range names.Name() {
			if strings.HasPrefix(n, "sub-") { // not the runner's ephemeral consumer
				out = append(out, n)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { c := consumers(); return len(c) == 1 && c[0] == "sub-"+id+"-"+strconv.FormatUint(gen, 10) }, 10*time.Second, 20*time.Millisecond, "%v", consumers())

	// Removed: the consumer goes, nothing more is delivered.
	m.write(id, domain.SubscriptionRemoved{})
	require.Eventually(t, func() bool { return len(consumers()) == 0 }, 10*time.Second, 20*time.Millisecond)
	publishMemory(t, m.store)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, rec.deliveries(), 10)
}

func TestManagerSaysWhenASecretCannotBeOpened(t *testing.T) {
	m := newManaged(t)
	other, err := subscriptions.NewKeyring(make([]byte, 32))
	require.NoError(t, err)
	id := uuid.NewString()
	sealed, err := other.Seal(id, []byte("x"))
	require.NoError(t, err)
	m.write(id, domain.SubscriptionRegistered{URL: "http://127.0.0.1:1/x", Subjects: []string{"ledger.>"},
		From: domain.Position{Kind: domain.PositionNow}, SealedSecret: sealed, KeyID: other.ID})
	require.Eventually(t, func() bool {
		e := m.status(id).Error
		return e != "" && e != "not started yet"
	}, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, m.status(id).Error, "sealed with another key "+other.ID)
}

// Another process on the log reset a subscription, and this one's projections have not
// applied the reset yet: it neither deletes the later consumer nor makes its own again (which
// would deliver the old position twice), and says why it does not deliver.
func TestManagerLeavesALaterPositionAlone(t *testing.T) {
	m := newManaged(t)
	rec := newReceiver(t, "whsec-later")
	id := uuid.NewString()
	sealed, err := m.keys.Seal(id, []byte("whsec-later"))
	require.NoError(t, err)
	gen := m.write(id, domain.SubscriptionRegistered{URL: rec.URL(), Subjects: []string{"ledger.memory.>"},
		From: domain.Position{Kind: domain.PositionBeginning}, SealedSecret: sealed, KeyID: m.keys.ID})
	eid, seq := publishMemory(t, m.store)
	requireInOrder(t, []want{{eid, seq}}, rec.waitFor(1))

	// The other process's reset: its consumer at a later generation, this one's deleted.
	st, err := m.store.JetStream().Stream(t.Context(), m.store.Stream)
	require.NoError(t, err)
	later := "sub-" + id + "-" + strconv.FormatUint(gen+100, 10)
	require.NoError(t, (&subscriptions.Feed{Stream: st, Name: later, Subjects: []string{"ledger.memory.>"}}).Open(t.Context()))
	require.NoError(t, (&subscriptions.Feed{Stream: st, Name: "sub-" + id + "-" + strconv.FormatUint(gen, 10)}).Delete(t.Context()))

	consumers := func() []string {
		var out []string
		names := st.ConsumerNames(t.Context())
		for n := range names.Name() {
			if strings.HasPrefix(n, "sub-") {
				out = append(out, n)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return strings.Contains(m.status(id).Error, "later position") }, 30*time.Second, 20*time.Millisecond,
		"status: %+v", m.status(id))
	require.Contains(t, m.status(id).Error, later)
	// Several reconciliations later, the later consumer is still the only one.
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, []string{later}, consumers())
	require.Len(t, rec.deliveries(), 1, "nothing delivered twice")
}
