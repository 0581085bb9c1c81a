package projections

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

// HookOwnCommits calls f before the commit of each writer's own event (see Runner.applyOwn);
// an error it returns fails that commit.
func HookOwnCommits(r *Runner, f func() error) { r.commitHook = f }
