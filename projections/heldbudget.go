package projections

import "sync/atomic"

// DefaultHeldBytes is the byte budget of the writes a build holds when none is given: 64 MiB
// for every projection together, the bbolt views' and the search index's. More is slower, not
// faster: the larger the held maps, the more each held write and each flush costs (cache
// misses, the collector's scans, larger nodes for bbolt to search), and that outweighs the
// flushes saved. BenchmarkRebuildCreations on a log of creations: 64 MiB against 256 MiB
// gave 17,000 against 15,000 events/s at 100,000 and 9,500 against 7,900 at 1,000,000.
const DefaultHeldBytes = 64 << 20

// HeldBudget is one byte budget for the writes a build from the log holds in memory across
// batches, shared by every projection of the build: the memories and integrity views' held
// writes (see heldBuckets) and the search index's held memories (see Search.Held). The
// runner writes every held write once the projections together hold Max bytes, at the end of
// the batch that reached it, but those of scattered buckets (see heldBuckets) while they hold
// less than half of it; a projection that alone holds Max bytes writes its own at once.
// So a build holds at most Max plus what one batch adds. The sizes are estimates of what the
// held data takes in memory (keys, values, decoded memories and their map entries), not the
// garbage collector's exact count.
type HeldBudget struct {
	// Max is the budget in bytes.
	Max int64

	holders []func() int
	// search is what the search index holds (it may run in a goroutine of its own).
	search atomic.Int64
}

// NewHeldBudget returns a budget of max bytes (DefaultHeldBytes when max is 0 or less).
func NewHeldBudget(max int64) *HeldBudget {
	if max <= 0 {
		max = DefaultHeldBytes
	}
	return &HeldBudget{Max: max}
}

// HeldBudgetFor is the budget of held writes for a process whose memory is limited to limit
// bytes (the Go runtime's soft limit; 0 or less for none): a third of it, at least 32 MiB and
// at most DefaultHeldBytes (more is slower), DefaultHeldBytes without a limit. The rest is for
// what a build holds besides (the batch in the making, the log's messages in flight, the
// search index's segments being written, the runtime).
func HeldBudgetFor(limit int64) *HeldBudget {
	if limit <= 0 {
		return NewHeldBudget(DefaultHeldBytes)
	}
	return NewHeldBudget(min(max(limit/3, 32<<20), DefaultHeldBytes))
}

// register adds a holder's count of its held bytes.
func (b *HeldBudget) register(held func() int) { b.holders = append(b.holders, held) }

// forgetFrom drops the holders registered after the first n, so that what they held (maps
// emptied by their last flush, which keep their size) can be collected while the budget
// serves on, as a search index built after the views.
func (b *HeldBudget) forgetFrom(n int) {
	clear(b.holders[n:])
	b.holders = b.holders[:n]
}

// Used is about how many bytes are held now.
func (b *HeldBudget) Used() int64 {
	n := b.search.Load()
	for _, h := range b.holders {
		n += int64(h())
	}
	return n
}

// full reports whether the holders together hold the budget.
func (b *HeldBudget) full() bool { return b.Used() >= b.Max }
