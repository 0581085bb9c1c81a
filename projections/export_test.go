package projections

import (
	"time"

	"github.com/memledger/memledger/domain"
)

// HoldAtMost makes rebuilding projections flush whenever they hold n bytes of writes, until the
// returned function restores the budget.
func HoldAtMost(n int) (restore func()) {
	before := heldBytesMax
	heldBytesMax = int64(n)
	return func() { heldBytesMax = before }
}

// RebuildInBatchesOf makes Build apply n events per transaction, until the returned function
// restores the batch size.
func RebuildInBatchesOf(n int) (restore func()) {
	before := rebuildBatchSize
	rebuildBatchSize = n
	return func() { rebuildBatchSize = before }
}

// HookOwnCommits calls f with the events of each commit of writers' own events before it
// commits (see Runner.applyOwn); an error it returns fails that commit.
func HookOwnCommits(r *Runner, f func(evs []domain.Event) error) { r.commitHook = f }

// GatherOwnFor makes r's groups of writers' own events gather for d before they commit, unless
// rushed.
func GatherOwnFor(r *Runner, d time.Duration) { r.gatherOwn = d }

// Holders is how many holders budget counts the bytes of.
func Holders(budget *HeldBudget) int { return len(budget.holders) }
