package domain_test

import (
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

func importedEvent(n int, p domain.Payload) domain.Event {
	return domain.NewEvent("m-1", domain.Meta{EventID: "ev-" + string(rune('a'+n)), Actor: "atocore-import",
		Time: time.Date(2026, 4, 1, 10, n, 0, 0, time.UTC)}, p)
}

func TestReconcileToSetsTheWholeStateAndNamesWhatDiffered(t *testing.T) {
	created := importedEvent(0, domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: "x", Status: domain.StatusActive,
		Confidence: 1, SourceChunkID: "c-1", DomainTags: []string{"a"}})
	created.Seq = 1
	m := domain.ApplyMemory(domain.Memory{}, created)
	last := time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC)
	target := m
	target.Status, target.ReferenceCount, target.LastReferencedAt = domain.StatusSuperseded, 3, &last
	target.UpdatedAt = last
	require.Nil(t, domain.ReconcileTo(m, m), "nothing differs: no event")
	p := domain.ReconcileTo(m, target)
	require.NotNil(t, p)
	require.Equal(t, []string{"status", "reference_count", "last_referenced_at", "updated_at"}, p.Changed)
	ev := importedEvent(9, *p)
	ev.Seq = 7
	got := domain.ApplyMemory(m, ev)
	target.Seq = 7
	require.Equal(t, target, got, "the fold equals the target, source chunk and id kept")
	require.Equal(t, domain.ActionReconciled, domain.AuditAction(m, ev))
}

func TestCheckImportedFollowsTheStateMachine(t *testing.T) {
	r := domain.DefaultRules()
	create := importedEvent(0, domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: "x", Status: domain.StatusCandidate, Confidence: 1, DomainTags: []string{}})
	require.NoError(t, r.CheckImported(domain.Memory{}, create))
	m := domain.ApplyMemory(domain.Memory{}, create)
	require.ErrorIs(t, r.CheckImported(m, create), domain.ErrConflict, "a second create")
	require.ErrorIs(t, r.CheckImported(domain.Memory{}, importedEvent(1, domain.MemoryPromoted{})), domain.ErrNotFound)
	require.NoError(t, r.CheckImported(m, importedEvent(1, domain.MemoryPromoted{})))
	require.ErrorIs(t, r.CheckImported(m, importedEvent(1, domain.MemoryInvalidated{})), domain.ErrConflict, "invalidate is from active only")
	require.NoError(t, r.CheckImported(m, importedEvent(1, domain.MemoryUpdated{Changed: []string{"status"}, Status: domain.StatusInvalid})), "a reject through an update")
	require.ErrorIs(t, r.CheckImported(m, importedEvent(1, domain.MemoryUpdated{Changed: []string{"status"}, Status: domain.StatusSuperseded})), domain.ErrConflict)
	require.ErrorIs(t, r.CheckImported(m, importedEvent(1, domain.MemoryReinforced{Delta: -0.1})), domain.ErrInvalid)
	bad := create
	bad.Data = domain.MemoryCreated{MemoryType: "fact", Content: "x", Status: domain.StatusActive}
	require.ErrorIs(t, r.CheckImported(domain.Memory{}, bad), domain.ErrInvalid, "an unknown type")
	bad.Data = domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: "x", Status: domain.StatusInvalid}
	require.ErrorIs(t, r.CheckImported(domain.Memory{}, bad), domain.ErrInvalid, "a new memory is candidate or active")
	inv := m
	inv.Status = domain.StatusInvalid
	rec := importedEvent(2, domain.MemoryReconciled{MemoryType: domain.TypeKnowledge, Content: "x", Status: domain.StatusActive, DomainTags: []string{}})
	require.NoError(t, r.CheckImported(inv, rec), "a reconciliation from any status")
	rec.Data = domain.MemoryReconciled{MemoryType: domain.TypeKnowledge, Content: "x", Status: "graduated"}
	require.ErrorIs(t, r.CheckImported(inv, rec), domain.ErrInvalid)
	noID := create
	noID.ID = ""
	require.ErrorIs(t, r.CheckImported(domain.Memory{}, noID), domain.ErrInvalid)
}
