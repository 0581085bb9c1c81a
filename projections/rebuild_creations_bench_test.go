package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// creationsN is the number of memories of BenchmarkRebuildCreations: 100,000, or
// MEMLEDGER_REBUILD_N.
func creationsN(b *testing.B) int {
	n := envCount(b, "MEMLEDGER_REBUILD_N", 100_000)
	return n - n%rebuildWriters
}

// BenchmarkRebuildCreations rebuilds every projection of the service from a log of creations
// alone, as a ledger written through POST /memory holds: each memory its own content, one of 20
// projects, a third of them candidates. It is the costliest event to apply, and the shape of
// BenchmarkScale's ledger. N is 100,000 by default; MEMLEDGER_REBUILD_N=1000000 gives the
// million, so the two rates show whether a rebuild slows as the log grows.
//
//	go test ./projections -run '^$' -bench RebuildCreations -benchtime 2x
//	MEMLEDGER_REBUILD_N=1000000 go test ./projections -run '^$' -bench RebuildCreations -benchtime 1x -timeout 1h
func BenchmarkRebuildCreations(b *testing.B) {
	n := creationsN(b)
	l := writeCreations(b, n)
	b.Run(fmt.Sprintf("all-projections-%d", n), func(b *testing.B) { buildWith(b, l, l.store, app.Projections()) })
	// The decoded log is read only now: held in memory, it would weigh on the collector above.
	b.Run(fmt.Sprintf("apply-only-%d", n), func(b *testing.B) {
		if l.events == nil {
			l.readBack(b)
			b.ResetTimer()
		}
		buildWith(b, l, sliceSource(l.events), app.Projections())
	})
}

// writeCreations appends n creations (a multiple of rebuildWriters) to a fresh store from
// rebuildWriters writers.
func writeCreations(b *testing.B, n int) *rebuildLog {
	b.Helper()
	return appendByWriters(b, uint64(n), func(store *eventstore.Store, w int) error {
		ctx := context.Background()
		for i := range n / rebuildWriters {
			status := domain.StatusActive
			if i%3 == 0 {
				status = domain.StatusCandidate
			}
			p := domain.MemoryCreated{
				MemoryType: domain.MemoryTypes[i%len(domain.MemoryTypes)],
				Content:    fmt.Sprintf("fact %d of writer %d about the interferometer's HeNe laser at 632.8 nm, aligned on the optical table", i, w),
				Project:    fmt.Sprintf("project-%02d", (i+w)%20), Status: status, Confidence: 0.5,
				DomainTags: []string{"optics", "lab"},
			}
			ev := domain.NewEvent(uuid.Must(uuid.NewV7()).String(), domain.Meta{
				EventID: uuid.Must(uuid.NewV7()).String(), Actor: fmt.Sprintf("writer-%d", w),
				Time: t0.Add(time.Duration(i) * time.Millisecond),
			}, p)
			if _, err := store.Append(ctx, 0, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// BenchmarkRebuildLifecycle rebuilds every projection of the service, as memledger rebuild
// does, from the lifecycle log of BenchmarkRebuild100k (each memory created, updated,
// reinforced, promoted or reinforced again, and re-tagged, each writer taking its memories one
// after the other) of N events: 100,000 by default, MEMLEDGER_REBUILD_N=1000000 for the
// million, so that the two rates show whether a rebuild of that log slows as it grows. The log
// is not also held decoded in memory, which would weigh on the collector at a million.
//
//	go test ./projections -run '^$' -bench RebuildLifecycle -benchtime 2x
//	MEMLEDGER_REBUILD_N=1000000 go test ./projections -run '^$' -bench RebuildLifecycle -benchtime 1x -timeout 1h
func BenchmarkRebuildLifecycle(b *testing.B) {
	memories := envCount(b, "MEMLEDGER_REBUILD_N", 100_000) / rebuildRounds
	memories -= memories % rebuildWriters
	l := appendByWriters(b, uint64(memories*rebuildRounds), func(store *eventstore.Store, w int) error {
		return appendShare(store, w, false, memories)
	})
	b.Run(fmt.Sprintf("all-projections-%d", l.last), func(b *testing.B) { buildWith(b, l, l.store, app.Projections()) })
}
