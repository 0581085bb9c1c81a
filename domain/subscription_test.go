package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

var subMeta = domain.Meta{EventID: "e-1", Actor: "admin", Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}

func registerCmd() domain.RegisterSubscription {
	return domain.RegisterSubscription{ID: "sub-1", URL: "https://hooks.example/x", From: domain.Position{Kind: domain.PositionNow},
		SealedSecret: "v1:k:abc", KeyID: "k", LogEnd: 10,
		KnownType: func(t string) bool { return t == "memory.promoted" || t == "alert.raised" }}
}

func TestParsePosition(t *testing.T) {
	for in, want := range map[string]domain.Position{
		"beginning": {Kind: domain.PositionBeginning}, "NOW": {Kind: domain.PositionNow}, "42": {Kind: domain.PositionSeq, Seq: 42},
	} {
		got, err := domain.ParsePosition("from", in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	p, err := domain.ParsePosition("from", "2026-12-01T11:00:00+01:00")
	require.NoError(t, err)
	require.Equal(t, domain.PositionTime, p.Kind)
	require.Equal(t, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), *p.Time)
	require.Equal(t, "2026-12-01T10:00:00Z", p.String())
	for _, bad := range []string{"", "0", "-1", "yesterday", "2026-13-01T00:00:00Z"} {
		_, err := domain.ParsePosition("from", bad)
		require.ErrorIs(t, err, domain.ErrInvalid, bad)
		var fe *domain.FieldError
		require.True(t, errors.As(err, &fe))
		require.Equal(t, "from", fe.Field)
	}
}

func TestDecideRegisterSubscription(t *testing.T) {
	ev, err := domain.DecideRegisterSubscription(domain.Subscription{}, registerCmd(), subMeta)
	require.NoError(t, err)
	p := ev.Data.(domain.SubscriptionRegistered)
	require.Equal(t, []string{"ledger.>"}, p.Subjects, "no filter: everything")

	c := registerCmd()
	c.Types = []string{"memory.promoted", "alert.raised", "memory.promoted"}
	ev, err = domain.DecideRegisterSubscription(domain.Subscription{}, c, subMeta)
	require.NoError(t, err)
	p = ev.Data.(domain.SubscriptionRegistered)
	require.Equal(t, []string{"memory.promoted", "alert.raised"}, p.Types)
	require.Equal(t, []string{"ledger.memory.>", "ledger.alert.>"}, p.Subjects, "types without subjects: their kinds")

	for name, tc := range map[string]struct {
		change func(*domain.RegisterSubscription)
		field  string
	}{
		"not http":           {func(c *domain.RegisterSubscription) { c.URL = "ftp://x/y" }, "url"},
		"credentials in url": {func(c *domain.RegisterSubscription) { c.URL = "https://u:p@x/y" }, "url"},
		"outside ledger":     {func(c *domain.RegisterSubscription) { c.Subjects = []string{"$JS.API.>"} }, "subjects"},
		"> not last":         {func(c *domain.RegisterSubscription) { c.Subjects = []string{"ledger.>.x"} }, "subjects"},
		"partial wildcard":   {func(c *domain.RegisterSubscription) { c.Subjects = []string{"ledger.mem*"} }, "subjects"},
		"empty token":        {func(c *domain.RegisterSubscription) { c.Subjects = []string{"ledger..x"} }, "subjects"},
		"overlap":            {func(c *domain.RegisterSubscription) { c.Subjects = []string{"ledger.memory.>", "ledger.*.abc"} }, "subjects"},
		"unknown type":       {func(c *domain.RegisterSubscription) { c.Types = []string{"memory.promotd"} }, "types"},
		"malformed type":     {func(c *domain.RegisterSubscription) { c.Types = []string{"Memory"} }, "types"},
		"beyond the log":     {func(c *domain.RegisterSubscription) { c.From = domain.Position{Kind: domain.PositionSeq, Seq: 12} }, "from"},
		"no secret":          {func(c *domain.RegisterSubscription) { c.SealedSecret = "" }, "secret"},
	} {
		c := registerCmd()
		tc.change(&c)
		_, err := domain.DecideRegisterSubscription(domain.Subscription{}, c, subMeta)
		var fe *domain.FieldError
		require.True(t, errors.As(err, &fe), "%s: %v", name, err)
		require.Equal(t, tc.field, fe.Field, name)
	}
	// Subjects that do not overlap are fine, one past the log's end too.
	c = registerCmd()
	c.Subjects = []string{"ledger.memory.>", "ledger.alert.critical", "ledger.state.*"}
	c.From = domain.Position{Kind: domain.PositionSeq, Seq: 11}
	_, err = domain.DecideRegisterSubscription(domain.Subscription{}, c, subMeta)
	require.NoError(t, err)

	_, err = domain.DecideRegisterSubscription(domain.Subscription{ID: "sub-1"}, registerCmd(), subMeta)
	require.ErrorIs(t, err, domain.ErrConflict)
}

func TestSubscriptionLifecycle(t *testing.T) {
	var s domain.Subscription
	seq := uint64(100)
	apply := func(ev domain.Event, err error) {
		t.Helper()
		require.NoError(t, err)
		seq++
		ev.Seq = seq
		s = domain.ApplySubscription(s, ev)
	}
	apply(domain.DecideRegisterSubscription(s, registerCmd(), subMeta))
	require.Equal(t, domain.StatusSubscriptionActive, s.Status)
	require.Equal(t, uint64(101), s.Generation)
	require.Equal(t, uint64(102), s.StartSeq, "now: the events after the registration")
	require.Equal(t, "admin", s.CreatedBy)

	_, err := domain.DecideSubscriptionAction(s, domain.ActionResume, subMeta)
	require.ErrorIs(t, err, domain.ErrConflict)
	apply(domain.DecideSubscriptionAction(s, domain.ActionPause, subMeta))
	require.Equal(t, domain.StatusSubscriptionPaused, s.Status)
	_, err = domain.DecideSubscriptionAction(s, domain.ActionPause, subMeta)
	require.ErrorIs(t, err, domain.ErrConflict)

	// A reset of a paused subscription keeps it paused, at a new generation.
	apply(domain.DecideResetSubscription(s, domain.ResetSubscription{From: domain.Position{Kind: domain.PositionBeginning}, LogEnd: 103}, subMeta))
	require.Equal(t, domain.StatusSubscriptionPaused, s.Status)
	require.Equal(t, uint64(103), s.Generation)
	require.Equal(t, uint64(1), s.StartSeq)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	apply(domain.DecideResetSubscription(s, domain.ResetSubscription{From: domain.Position{Kind: domain.PositionTime, Time: &at}, LogEnd: 104}, subMeta))
	require.Equal(t, uint64(0), s.StartSeq)
	require.Equal(t, at, *s.StartTime)
	_, err = domain.DecideResetSubscription(s, domain.ResetSubscription{From: domain.Position{Kind: domain.PositionSeq, Seq: 200}, LogEnd: 104}, subMeta)
	require.ErrorIs(t, err, domain.ErrInvalid)

	apply(domain.DecideSubscriptionAction(s, domain.ActionResume, subMeta))
	require.Equal(t, domain.StatusSubscriptionActive, s.Status)
	apply(domain.DecideSubscriptionAction(s, domain.ActionRemove, subMeta))
	require.Equal(t, domain.StatusSubscriptionRemoved, s.Status)
	_, err = domain.DecideSubscriptionAction(s, domain.ActionPause, subMeta)
	require.ErrorIs(t, err, domain.ErrNotFound)
	_, err = domain.DecideResetSubscription(s, domain.ResetSubscription{From: domain.Position{Kind: domain.PositionNow}}, subMeta)
	require.ErrorIs(t, err, domain.ErrNotFound)
	_, err = domain.DecideSubscriptionAction(domain.Subscription{}, domain.ActionRemove, subMeta)
	require.ErrorIs(t, err, domain.ErrNotFound)
}
