package projections

// HoldAtMost makes rebuilding projections flush whenever they hold n writes, until the
// returned function restores the limits.
func HoldAtMost(n int) (restore func()) {
	memories, integrity := heldWritesMax, heldIntegrityMax
	heldWritesMax, heldIntegrityMax = n, n
	return func() { heldWritesMax, heldIntegrityMax = memories, integrity }
}
