package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

func TestCheckStateKey(t *testing.T) {
	for _, c := range []struct {
		project, category, key string
		field                  string // "" when valid
	}{
		{"p", "decision", "k", ""},
		{"p", "next_step", "a key with spaces inside", ""},
		{"p", "cat-2", strings.Repeat("k", 200), ""},
		{"atocore", "fact", "k", ""},
		{"p", "alert", "k", ""}, // alert and status are system categories of atocore only
		{"", "decision", "k", "project"},
		{"P", "decision", "k", "project"},
		{"p", "", "k", "category"},
		{"p", "Decision", "k", "category"},
		{"p", "a b", "k", "category"},
		{"p", "_x", "k", "category"},
		{"p", strings.Repeat("c", 65), "k", "category"},
		{"atocore", "alert", "last_warning", "category"},
		{"atocore", "status", "integrity_check_result", "category"},
		{"p", "decision", "", "key"},
		{"p", "decision", " k", "key"},
		{"p", "decision", "k\n", "key"},
		{"p", "decision", strings.Repeat("k", 201), "key"},
		{"p", "decision", "a\x00b", "key"},
	} {
		err := domain.CheckStateKey(c.project, c.category, c.key)
		if c.field == "" {
			require.NoError(t, err, "%q/%q/%q", c.project, c.category, c.key)
		} else {
			pfRequireField(t, err, c.field)
		}
	}
}

// pfFold applies events to a project's state.
func pfFold(st domain.ProjectState, evs ...domain.Event) domain.ProjectState {
	for _, ev := range evs {
		domain.ApplyState(st, ev)
	}
	return st
}

func TestDecideSetState(t *testing.T) {
	st := domain.ProjectState{}
	evs, err := domain.DecideSetState(st, domain.SetState{Project: "p", Category: "decision", Key: "log", Value: "NATS", Source: "review"}, pfMeta)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	ev := evs[0]
	require.Equal(t, domain.EventStateSet, ev.Type)
	require.Equal(t, "state", ev.Kind())
	require.Equal(t, "p", ev.AggregateID, "the aggregate is the project")
	require.Equal(t, domain.StateSet{Category: "decision", Key: "log", Value: "NATS", Source: "review", Confidence: 1}, ev.Data,
		"confidence defaults to 1")
	ev.Seq = 7
	pfFold(st, ev)
	require.Equal(t, domain.StateEntry{Project: "p", Category: "decision", Key: "log", Value: "NATS", Source: "review",
		Confidence: 1, Status: domain.StateActive, UpdatedAt: pfMeta.Time, Seq: 7}, st[domain.StateKey{Category: "decision", Key: "log"}])

	// The same again, with or without the default confidence: nothing to record.
	for _, conf := range []*float64{nil, pfPtr(1.0)} {
		evs, err = domain.DecideSetState(st, domain.SetState{Project: "p", Category: "decision", Key: "log", Value: "NATS", Source: "review", Confidence: conf}, pfMeta)
		require.NoError(t, err)
		require.Empty(t, evs)
	}
	// Any change of value, source or confidence is recorded.
	for _, c := range []domain.SetState{
		{Project: "p", Category: "decision", Key: "log", Value: "NATS!", Source: "review"},
		{Project: "p", Category: "decision", Key: "log", Value: "NATS", Source: ""},
		{Project: "p", Category: "decision", Key: "log", Value: "NATS", Source: "review", Confidence: pfPtr(0.9)},
		{Project: "p", Category: "decision", Key: "other", Value: "NATS", Source: "review"},
	} {
		evs, err = domain.DecideSetState(st, c, pfMeta)
		require.NoError(t, err)
		require.Len(t, evs, 1, "%+v", c)
	}
	// An invalidated entry set to its old value is active again: that is a change.
	inv, err := domain.DecideInvalidateState(st, domain.InvalidateState{Project: "p", Category: "decision", Key: "log"}, pfMeta)
	require.NoError(t, err)
	pfFold(st, inv)
	evs, err = domain.DecideSetState(st, domain.SetState{Project: "p", Category: "decision", Key: "log", Value: "NATS", Source: "review"}, pfMeta)
	require.NoError(t, err)
	require.Len(t, evs, 1)
}

func pfPtr[T any](v T) *T { return &v }

func TestDecideSetStateRefusals(t *testing.T) {
	base := domain.SetState{Project: "p", Category: "fact", Key: "k", Value: "v"}
	with := func(f func(*domain.SetState)) domain.SetState {
		c := base
		f(&c)
		return c
	}
	for _, c := range []struct {
		cmd   domain.SetState
		field string
	}{
		{with(func(c *domain.SetState) { c.Project = "Bad" }), "project"},
		{with(func(c *domain.SetState) { c.Category = "" }), "category"},
		{with(func(c *domain.SetState) { c.Project, c.Category = "atocore", "alert" }), "category"},
		{with(func(c *domain.SetState) { c.Key = "" }), "key"},
		{with(func(c *domain.SetState) { c.Value = "" }), "value"},
		{with(func(c *domain.SetState) { c.Value = " \t\n" }), "value"},
		{with(func(c *domain.SetState) { c.Value = strings.Repeat("é", 20001) }), "value"},
		{with(func(c *domain.SetState) { c.Source = strings.Repeat("s", 501) }), "source"},
		{with(func(c *domain.SetState) { c.Confidence = pfPtr(-0.1) }), "confidence"},
		{with(func(c *domain.SetState) { c.Confidence = pfPtr(1.01) }), "confidence"},
	} {
		_, err := domain.DecideSetState(domain.ProjectState{}, c.cmd, pfMeta)
		pfRequireField(t, err, c.field)
	}
	evs, err := domain.DecideSetState(domain.ProjectState{},
		with(func(c *domain.SetState) {
			c.Value, c.Source, c.Confidence = strings.Repeat("é", 20000), strings.Repeat("s", 500), pfPtr(0.0)
		}), pfMeta)
	require.NoError(t, err, "the limits themselves are fine, and a confidence of 0")
	require.Equal(t, 0.0, evs[0].Data.(domain.StateSet).Confidence)

	bad := pfMeta
	bad.Actor = "has space"
	_, err = domain.DecideSetState(domain.ProjectState{}, base, bad)
	pfRequireField(t, err, "actor")
}

func TestDecideInvalidateState(t *testing.T) {
	st := domain.ProjectState{}
	c := domain.InvalidateState{Project: "p", Category: "fact", Key: "k"}
	_, err := domain.DecideInvalidateState(st, c, pfMeta)
	require.ErrorIs(t, err, domain.ErrNotFound)

	evs, err := domain.DecideSetState(st, domain.SetState{Project: "p", Category: "fact", Key: "k", Value: "v"}, pfMeta)
	require.NoError(t, err)
	evs[0].Seq = 1
	pfFold(st, evs[0])
	ev, err := domain.DecideInvalidateState(st, c, pfMeta)
	require.NoError(t, err)
	require.Equal(t, domain.EventStateInvalidated, ev.Type)
	require.Equal(t, "p", ev.AggregateID)
	require.Equal(t, domain.StateInvalidated{Category: "fact", Key: "k"}, ev.Data)

	later := pfMeta
	later.Time = pfMeta.Time.Add(time.Hour)
	ev = domain.NewEvent("p", later, ev.Data)
	ev.Seq = 2
	pfFold(st, ev)
	e := st[domain.StateKey{Category: "fact", Key: "k"}]
	require.Equal(t, domain.StateInvalid, e.Status)
	require.Equal(t, "v", e.Value, "invalidation keeps the value")
	require.Equal(t, uint64(2), e.Seq)
	require.Equal(t, later.Time, e.UpdatedAt)

	_, err = domain.DecideInvalidateState(st, c, pfMeta)
	require.ErrorIs(t, err, domain.ErrConflict, "already invalid")
	require.Contains(t, err.Error(), "invalid")
	_, err = domain.DecideInvalidateState(st, domain.InvalidateState{Project: "atocore", Category: "status", Key: "integrity_check_result"}, pfMeta)
	pfRequireField(t, err, "category")
}

func TestApplyStateInvalidationOfUnknownEntryIsIgnored(t *testing.T) {
	st := domain.ProjectState{}
	pfFold(st, domain.NewEvent("p", pfMeta, domain.StateInvalidated{Category: "fact", Key: "k"}))
	require.Empty(t, st)
	pfFold(st, domain.NewEvent("p", pfMeta, domain.ProjectRegistered{}))
	require.Empty(t, st, "other events are ignored")
}
