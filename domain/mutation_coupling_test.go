package domain_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// mutationCommands are a command of each state-machine action, as Decide takes it.
func mutationCommands(now time.Time) map[domain.Action][]domain.Command {
	content := "changed content"
	return map[domain.Action][]domain.Command{
		domain.ActionUpdated:     {domain.UpdateMemory{Content: &content}},
		domain.ActionPromoted:    {domain.PromoteMemory{}, domain.AutoPromoteMemory{MinReferenceCount: 1, MinConfidence: 0}},
		domain.ActionRejected:    {domain.RejectMemory{}},
		domain.ActionInvalidated: {domain.InvalidateMemory{}},
		domain.ActionSuperseded:  {domain.SupersedeMemory{SupersededBy: "other-memory"}},
		domain.ActionReinforced:  {domain.ReinforceMemory{}},
		domain.ActionExpired:     {domain.ExpireMemory{Now: now, MaxAge: 24 * time.Hour}},
		domain.ActionReverted: {
			domain.RevertMemory{To: domain.Memory{MemoryType: domain.TypeKnowledge, Content: "earlier content", Status: domain.StatusCandidate, Confidence: 0.4}, Undoes: []string{"e0"}},
			domain.RevertMemory{To: domain.Memory{MemoryType: domain.TypePreference, Content: "content", Status: domain.StatusActive, Confidence: 0.5}, Undoes: []string{"e0"}},
			domain.RevertMemory{Undoes: []string{"e0"}, UndoesCreation: true},
		},
	}
}

// TestMutationCoupling checks that the parallel tables of a memory mutation agree: each row of
// the state machine has a command whose decide case writes the row's event, only from the
// row's statuses; applying that event leads to the row's status; the audit names the row's
// action; and every action but created has a row.
func TestMutationCoupling(t *testing.T) {
	created := time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC)
	now := created.Add(30 * 24 * time.Hour)
	commands := mutationCommands(now)
	rows := domain.Mutations()
	var actions []domain.Action
	for _, row := range rows {
		actions = append(actions, row.Action)
		require.True(t, strings.HasPrefix(row.Event, domain.KindMemory+"."), "row %s records a memory event, not %s", row.Action, row.Event)
		cmds := commands[row.Action]
		require.NotEmpty(t, cmds, "a command for the row %s", row.Action)
		for _, cmd := range cmds {
			for _, status := range domain.Statuses {
				before := domain.ApplyMemory(domain.Memory{}, domain.NewEvent("m-1", domain.Meta{EventID: "e0", Actor: "test", Time: created},
					domain.MemoryCreated{MemoryType: domain.TypeKnowledge, Content: "content", Status: status, Confidence: 0.5}))
				before.Seq = 1
				if cmd, ok := cmd.(domain.AutoPromoteMemory); ok {
					before.ReferenceCount = cmd.MinReferenceCount
				}
				evs, err := domain.DefaultRules().Decide(before, "m-1", cmd, domain.Meta{EventID: "e1", Actor: "test", Time: now})
				if !slices.Contains(row.From, status) {
					var te *domain.TransitionError
					require.ErrorAs(t, err, &te, "%T from %s is refused by the row", cmd, status)
					continue
				}
				require.NoError(t, err, "%T from %s", cmd, status)
				if r, ok := cmd.(domain.RevertMemory); ok && r.UndoesCreation && status == domain.StatusInvalid {
					require.Empty(t, evs, "invalidating an invalid memory changes nothing")
					continue
				}
				require.Len(t, evs, 1)
				require.Equal(t, row.Event, evs[0].Type, "%T writes the row's event", cmd)
				after := domain.ApplyMemory(before, evs[0])
				want := row.To
				if want == "" {
					want = status
				}
				if r, ok := cmd.(domain.RevertMemory); ok {
					require.True(t, row.Restores, "a revert's row restores")
					want = r.To.Status
					if r.UndoesCreation {
						want = domain.StatusInvalid
					}
				}
				require.Equal(t, want, after.Status, "%s from %s leads where the row says", row.Event, status)
				require.Equal(t, row.Action, domain.AuditAction(before, evs[0]), "the audit names the row's action")
			}
		}
	}
	for _, a := range domain.Actions {
		if a == domain.ActionCreated || a == domain.ActionReconciled {
			continue // not transitions: a memory's first event, an importer's restatement
		}
		require.Contains(t, actions, a, "action %s has a row in the state machine", a)
	}
	require.Len(t, commands, len(rows), "every command table entry has a row")
}
