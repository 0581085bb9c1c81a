package projections_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

func TestSubscriptionsProjection(t *testing.T) {
	dir := t.TempDir()
	store := eventstore.New(dir)
	store.Fsync = eventstore.FsyncInterval
	store.Logger = slog.New(slog.DiscardHandler)
	require.NoError(t, store.Open(t.Context()))
	t.Cleanup(func() { store.Close() })
	db, err := projections.Open(filepath.Join(dir, "live.db"), true)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ps := []projections.Projection{projections.Subscriptions{}}
	r := &projections.Runner{DB: db, Source: store, Projections: ps, Logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, r.Init())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	n := 0
	add := func(id string, p domain.Payload) uint64 {
		t.Helper()
		n++
		ev := domain.NewEvent(id, domain.Meta{EventID: uuid.NewString(), Actor: "admin",
			Time: time.Date(2026, 12, 1, 10, 0, n, 0, time.UTC)}, p)
		res, err := store.Append(t.Context(), eventstore.Unchecked, ev)
		require.NoError(t, err)
		require.NoError(t, r.WaitFor(t.Context(), res.Seq))
		return res.Seq
	}
	_, err = db.Subscription("a")
	require.ErrorIs(t, err, domain.ErrNotFound)

	regA := add("a", domain.SubscriptionRegistered{URL: "https://x/a", Subjects: []string{"ledger.>"},
		From: domain.Position{Kind: domain.PositionNow}, SealedSecret: "v1:k:sealed-a", KeyID: "k"})
	add("b", domain.SubscriptionRegistered{URL: "https://x/b", Subjects: []string{"ledger.alert.>"},
		From: domain.Position{Kind: domain.PositionBeginning}, SealedSecret: "v1:k:sealed-b", KeyID: "k"})
	a, err := db.Subscription("a")
	require.NoError(t, err)
	require.Equal(t, "v1:k:sealed-a", a.SealedSecret)
	require.Equal(t, regA, a.Generation)
	require.Equal(t, regA+1, a.StartSeq)
	require.Equal(t, domain.StatusSubscriptionActive, a.Status)

	add("a", domain.SubscriptionPaused{})
	reset := add("a", domain.SubscriptionReset{From: domain.Position{Kind: domain.PositionSeq, Seq: 1}})
	rem := add("b", domain.SubscriptionRemoved{})
	all, err := db.Subscriptions()
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, "a", all[0].ID)
	require.Equal(t, domain.StatusSubscriptionPaused, all[0].Status)
	require.Equal(t, reset, all[0].Generation)
	require.Equal(t, uint64(1), all[0].StartSeq)
	require.Equal(t, "v1:k:sealed-a", all[0].SealedSecret, "kept across events")
	require.Equal(t, domain.StatusSubscriptionRemoved, all[1].Status)
	require.Equal(t, rem, all[1].Seq)

	// A rebuild from the log equals the live views.
	rebuilt, err := projections.Build(t.Context(), filepath.Join(dir, "rebuilt.db"), store, ps, rem, nil)
	require.NoError(t, err)
	defer rebuilt.Close()
	diffs, err := projections.Diff(db, rebuilt, 10)
	require.NoError(t, err)
	require.Empty(t, diffs)
}
