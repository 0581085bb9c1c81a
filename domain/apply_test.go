package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// event builds an appended event of memID at time at with log position seq.
func event(seq uint64, at time.Time, p domain.Payload) domain.Event {
	ev := domain.NewEvent(memID, domain.Meta{EventID: "ev", Actor: "test-actor", Time: at}, p)
	ev.Seq = seq
	return ev
}

// created is a MemoryCreated with every field set.
func created() domain.MemoryCreated {
	return domain.MemoryCreated{
		MemoryType:    domain.TypeKnowledge,
		Content:       "the build uses Go 1.26",
		Project:       "p-06-x",
		Status:        candidate,
		Confidence:    0.6,
		SourceChunkID: "chunk-7",
		DomainTags:    []string{"go", "build"},
		ValidUntil:    ptr(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
}

func TestApplyCreatedSetsEveryField(t *testing.T) {
	at := t0.Add(3 * time.Hour)
	m := domain.ApplyMemory(domain.Memory{}, event(41, at, created()))

	want := domain.Memory{
		ID:               memID,
		MemoryType:       domain.TypeKnowledge,
		Content:          "the build uses Go 1.26",
		Project:          "p-06-x",
		Status:           candidate,
		Confidence:       0.6,
		ReferenceCount:   0,
		LastReferencedAt: nil,
		SourceChunkID:    "chunk-7",
		DomainTags:       []string{"go", "build"},
		ValidUntil:       ptr(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)),
		SupersededBy:     "",
		CreatedAt:        at,
		UpdatedAt:        at,
		Seq:              41,
	}
	require.Equal(t, want, m)
	require.True(t, m.Exists())
	require.False(t, domain.Memory{}.Exists())
}

func TestApplyCreatedWithoutTagsHasEmptyList(t *testing.T) {
	p := created()
	p.DomainTags = nil
	p.ValidUntil = nil
	m := domain.ApplyMemory(domain.Memory{}, event(1, t0, p))
	require.NotNil(t, m.DomainTags, "an empty list, so JSON says [] and not null")
	require.Empty(t, m.DomainTags)
	require.Nil(t, m.ValidUntil)
}

// The state does not share memory with the event it came from.
func TestApplyCreatedDoesNotAliasEvent(t *testing.T) {
	p := created()
	m := domain.ApplyMemory(domain.Memory{}, event(1, t0, p))
	p.DomainTags[0] = "changed"
	*p.ValidUntil = p.ValidUntil.Add(time.Hour)
	require.Equal(t, []string{"go", "build"}, m.DomainTags)
	require.Equal(t, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), *m.ValidUntil)
}

func TestApplyReinforced(t *testing.T) {
	l := newLedger(t)
	c := baseCreate(candidate)
	c.Confidence = ptr(0.9)
	l.must(c)
	createdAt := l.m.CreatedAt

	evs, err := l.try(domain.ReinforceMemory{}) // default delta 0.05
	require.NoError(t, err)
	require.InDelta(t, 0.95, l.m.Confidence, 1e-12)
	require.Equal(t, 1, l.m.ReferenceCount)
	require.NotNil(t, l.m.LastReferencedAt)
	require.Equal(t, evs[0].Time, *l.m.LastReferencedAt)
	require.Equal(t, evs[0].Time, l.m.UpdatedAt)
	require.Equal(t, createdAt, l.m.CreatedAt)
	require.Equal(t, uint64(2), l.m.Seq)

	// Capped at 1.0.
	evs, err = l.try(domain.ReinforceMemory{Delta: 0.2})
	require.NoError(t, err)
	require.Equal(t, 1.0, l.m.Confidence)
	require.Equal(t, 2, l.m.ReferenceCount)
	require.Equal(t, evs[0].Time, *l.m.LastReferencedAt)

	// At 1.0 it stays there and still counts the reference.
	evs, err = l.try(domain.ReinforceMemory{Delta: 1})
	require.NoError(t, err)
	require.Equal(t, 1.0, l.m.Confidence)
	require.Equal(t, 3, l.m.ReferenceCount)
	require.Equal(t, evs[0].Time, *l.m.LastReferencedAt)
	require.Equal(t, candidate, l.m.Status)
}

// last_referenced_at comes from the event, whatever the order of times, never from a clock.
func TestApplyReinforcedTakesTimeFromEvent(t *testing.T) {
	m := domain.ApplyMemory(domain.Memory{}, event(1, t0, created()))
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	m = domain.ApplyMemory(m, event(2, past, domain.MemoryReinforced{Delta: 0.1}))
	require.Equal(t, past, *m.LastReferencedAt)
	require.Equal(t, past, m.UpdatedAt)
	require.InDelta(t, 0.7, m.Confidence, 1e-12)

	// The state's pointer is its own: changing the event later changes nothing.
	ev := event(3, t0.Add(time.Hour), domain.MemoryReinforced{Delta: 0.1})
	m2 := domain.ApplyMemory(m, ev)
	ev.Time = ev.Time.Add(time.Hour)
	require.Equal(t, t0.Add(time.Hour), *m2.LastReferencedAt)
	require.Equal(t, past, *m.LastReferencedAt, "the input state is unchanged")
}

func TestApplySuperseded(t *testing.T) {
	l := ledgerIn(t, active)
	l.must(domain.SupersedeMemory{SupersededBy: otherID})
	require.Equal(t, superseded, l.m.Status)
	require.Equal(t, otherID, l.m.SupersededBy)

	l = ledgerIn(t, active)
	l.must(domain.SupersedeMemory{})
	require.Equal(t, superseded, l.m.Status)
	require.Empty(t, l.m.SupersededBy)
}

func TestApplyStatusEvents(t *testing.T) {
	cases := []struct {
		from domain.Status
		p    domain.Payload
		to   domain.Status
	}{
		{candidate, domain.MemoryPromoted{}, active},
		{candidate, domain.MemoryRejected{}, invalid},
		{candidate, domain.MemoryExpired{}, invalid},
		{active, domain.MemoryInvalidated{}, invalid},
		{active, domain.MemorySuperseded{SupersededBy: otherID}, superseded},
	}
	for _, tc := range cases {
		t.Run(tc.p.EventType(), func(t *testing.T) {
			before := memoryIn(t, tc.from)
			at := before.UpdatedAt.Add(time.Hour)
			after := domain.ApplyMemory(before, event(before.Seq+1, at, tc.p))
			require.Equal(t, tc.to, after.Status)
			require.Equal(t, at, after.UpdatedAt)
			require.Equal(t, before.Seq+1, after.Seq)

			// Nothing else moves.
			after.Status, after.UpdatedAt, after.Seq, after.SupersededBy =
				before.Status, before.UpdatedAt, before.Seq, before.SupersededBy
			require.Equal(t, before, after)
		})
	}
}

// An update changes only the fields named in Changed, even when the payload carries others.
func TestApplyUpdatedOnlyChangesChangedFields(t *testing.T) {
	before := domain.ApplyMemory(domain.Memory{}, event(1, t0, created()))
	newVU := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	full := domain.MemoryUpdated{
		MemoryType: domain.TypeEpisodic,
		Content:    "new content",
		Confidence: 0.1,
		DomainTags: []string{"new"},
		ValidUntil: &newVU,
		Status:     active,
	}
	cases := map[string]func(*domain.Memory){
		"memory_type": func(m *domain.Memory) { m.MemoryType = domain.TypeEpisodic },
		"content":     func(m *domain.Memory) { m.Content = "new content" },
		"confidence":  func(m *domain.Memory) { m.Confidence = 0.1 },
		"domain_tags": func(m *domain.Memory) { m.DomainTags = []string{"new"} },
		"valid_until": func(m *domain.Memory) { m.ValidUntil = &newVU },
		"status":      func(m *domain.Memory) { m.Status = active },
		"":            func(m *domain.Memory) {}, // an unknown field name changes nothing
	}
	at := t0.Add(time.Hour)
	for field, edit := range cases {
		t.Run("changed_"+field, func(t *testing.T) {
			p := full
			p.Changed = []string{field}
			if field == "" {
				p.Changed = []string{"project"} // not updatable
			}
			got := domain.ApplyMemory(before, event(2, at, p))
			want := before
			want.DomainTags = []string{"go", "build"}
			edit(&want)
			want.UpdatedAt, want.Seq = at, 2
			require.Equal(t, want, got)
		})
	}

	t.Run("changed_nothing", func(t *testing.T) {
		p := full
		p.Changed = nil
		got := domain.ApplyMemory(before, event(2, at, p))
		want := before
		want.UpdatedAt, want.Seq = at, 2
		require.Equal(t, want, got)
	})
}

func TestApplyUpdatedTagsToEmpty(t *testing.T) {
	before := domain.ApplyMemory(domain.Memory{}, event(1, t0, created()))
	// A decoded event may have nil tags (omitempty): the state keeps an empty list.
	got := domain.ApplyMemory(before, event(2, t0, domain.MemoryUpdated{Changed: []string{"domain_tags"}}))
	require.NotNil(t, got.DomainTags)
	require.Empty(t, got.DomainTags)
}

func TestApplyValidUntilSetAndClear(t *testing.T) {
	l := ledgerIn(t, active)
	require.Nil(t, l.m.ValidUntil)

	vu := time.Date(2026, 12, 31, 23, 0, 0, 0, time.FixedZone("X", 3600))
	l.must(domain.UpdateMemory{SetValidUntil: true, ValidUntil: &vu})
	require.NotNil(t, l.m.ValidUntil)
	require.True(t, l.m.ValidUntil.Equal(vu))
	require.Equal(t, time.UTC, l.m.ValidUntil.Location())

	// The caller's variable is not the state's.
	vu = vu.Add(time.Hour)
	require.False(t, l.m.ValidUntil.Equal(vu))

	// SetValidUntil false leaves it alone.
	l.must(domain.UpdateMemory{Content: ptr("still prefers tabs")})
	require.NotNil(t, l.m.ValidUntil)

	// SetValidUntil with nil clears it.
	evs, err := l.try(domain.UpdateMemory{SetValidUntil: true, ValidUntil: nil})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	u := evs[0].Data.(domain.MemoryUpdated)
	require.Equal(t, []string{"valid_until"}, u.Changed)
	require.Nil(t, u.ValidUntil)
	require.Nil(t, l.m.ValidUntil)
}

// ApplyMemory returns a new state; the one it was given must stay as it was, even when the
// caller then mutates the result (the audit keeps both as before/after snapshots).
func TestApplyDoesNotAliasSlicesBetweenStates(t *testing.T) {
	before := domain.ApplyMemory(domain.Memory{}, event(1, t0, created()))
	payloads := []domain.Payload{
		domain.MemoryPromoted{},
		domain.MemoryRejected{},
		domain.MemoryExpired{},
		domain.MemoryInvalidated{},
		domain.MemorySuperseded{SupersededBy: otherID},
		domain.MemoryReinforced{Delta: 0.1},
		domain.MemoryUpdated{Changed: []string{"content"}, Content: "other"},
		domain.MemoryUpdated{Changed: []string{"domain_tags"}, DomainTags: []string{"go", "build"}},
	}
	for _, p := range payloads {
		t.Run(p.EventType(), func(t *testing.T) {
			after := domain.ApplyMemory(before, event(2, t0.Add(time.Minute), p))
			require.Equal(t, []string{"go", "build"}, after.DomainTags)
			after.DomainTags[0] = "mutated"
			after.DomainTags = append(after.DomainTags[:1], "appended")
			require.Equal(t, []string{"go", "build"}, before.DomainTags)
		})
	}

	// Nor with the payload of an update.
	p := domain.MemoryUpdated{Changed: []string{"domain_tags"}, DomainTags: []string{"x", "y"}}
	after := domain.ApplyMemory(before, event(2, t0, p))
	p.DomainTags[0] = "mutated"
	require.Equal(t, []string{"x", "y"}, after.DomainTags)

	// And a whole fold: mutating the final state leaves every earlier one intact.
	l := ledgerIn(t, candidate)
	snapshots := []domain.Memory{l.m}
	for _, cmd := range []domain.Command{
		domain.ReinforceMemory{},
		domain.UpdateMemory{DomainTags: ptr([]string{"a", "b", "c"})},
		domain.PromoteMemory{},
	} {
		l.must(cmd)
		snapshots = append(snapshots, l.m)
	}
	for i := range l.m.DomainTags {
		l.m.DomainTags[i] = "mutated"
	}
	require.Equal(t, []string{"editor"}, snapshots[0].DomainTags)
	require.Equal(t, []string{"editor"}, snapshots[1].DomainTags)
	require.Equal(t, []string{"a", "b", "c"}, snapshots[2].DomainTags)
}

type otherPayload struct{}

func (otherPayload) EventType() string { return "alert.raised" }

type unknownMemoryPayload struct{}

func (unknownMemoryPayload) EventType() string { return "memory.archived" }

// Events of another aggregate kind, unknown memory events and undecodable ones leave the state
// exactly as it was, including its version.
func TestApplyIgnoresForeignAndUnknownEvents(t *testing.T) {
	m := memoryIn(t, active)
	later := t0.AddDate(0, 1, 0)
	for name, ev := range map[string]domain.Event{
		"other kind":             event(99, later, otherPayload{}),
		"unknown memory payload": event(99, later, unknownMemoryPayload{}),
		"undecoded memory event": {Type: "memory.archived", AggregateID: memID, Time: later, Seq: 99},
		"memory payload under another kind": {
			Type: "project.updated", AggregateID: memID, Time: later, Seq: 99, Data: domain.MemoryPromoted{},
		},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, m, domain.ApplyMemory(m, ev))
		})
	}
	require.Equal(t, domain.Memory{}, domain.ApplyMemory(domain.Memory{}, event(1, t0, otherPayload{})))
}

func TestAuditAction(t *testing.T) {
	cand := memoryIn(t, candidate)
	act := memoryIn(t, active)
	cases := []struct {
		name   string
		before domain.Memory
		p      domain.Payload
		want   domain.Action
	}{
		{"created", domain.Memory{}, created(), domain.ActionCreated},
		{"updated", act, domain.MemoryUpdated{Changed: []string{"content"}, Content: "x"}, domain.ActionUpdated},
		{"promoted", cand, domain.MemoryPromoted{}, domain.ActionPromoted},
		{"rejected", cand, domain.MemoryRejected{}, domain.ActionRejected},
		{"invalidated", act, domain.MemoryInvalidated{}, domain.ActionInvalidated},
		{"superseded", act, domain.MemorySuperseded{}, domain.ActionSuperseded},
		{"reinforced", act, domain.MemoryReinforced{Delta: 0.05}, domain.ActionReinforced},
		{"expired", cand, domain.MemoryExpired{}, domain.ActionExpired},
		{"update candidate->active", cand, domain.MemoryUpdated{Changed: []string{"status"}, Status: active}, domain.ActionPromoted},
		{"update candidate->invalid", cand, domain.MemoryUpdated{Changed: []string{"status"}, Status: invalid}, domain.ActionRejected},
		{"update active->invalid", act, domain.MemoryUpdated{Changed: []string{"status"}, Status: invalid}, domain.ActionInvalidated},
		{"update active->superseded", act, domain.MemoryUpdated{Changed: []string{"status"}, Status: superseded}, domain.ActionSuperseded},
		{"update with status not in Changed", cand, domain.MemoryUpdated{Changed: []string{"content"}, Status: active}, domain.ActionUpdated},
		{"unknown payload", act, otherPayload{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, domain.AuditAction(tc.before, event(1, t0, tc.p)))
		})
	}
	require.Empty(t, domain.AuditAction(act, domain.Event{Type: "memory.archived"}))
}

func TestEventKind(t *testing.T) {
	require.Equal(t, "memory", domain.Event{Type: "memory.created"}.Kind())
	require.Equal(t, "alert", domain.Event{Type: "alert.raised.twice"}.Kind())
	require.Equal(t, "bare", domain.Event{Type: "bare"}.Kind())
	require.Equal(t, "", domain.Event{}.Kind())
}
