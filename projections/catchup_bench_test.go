package projections_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/projections"
)

// BenchmarkCatchUp50k measures how fast a live runner, as serve starts it on a data directory
// without projections, applies a log of 50,000 events on 10,000 memories (each written through
// its whole life, as clients do), side by side with a rebuild of the same log ("rebuild"):
// every projection of the service in both.
func BenchmarkCatchUp50k(b *testing.B) {
	l := writeLogOf(b, false, 10_000)
	b.Run("live", func(b *testing.B) {
		dir := b.TempDir()
		batches := 0
		for i := 0; i < b.N; i++ {
			db, err := projections.OpenLive(filepath.Join(dir, fmt.Sprintf("live-%d.db", i)), false, slog.New(slog.DiscardHandler))
			require.NoError(b, err)
			r := &projections.Runner{DB: db, Source: l.store, Projections: app.Projections(), Logger: slog.New(slog.DiscardHandler), CatchUpTo: l.last,
				Progress: func(uint64) { batches++ }}
			require.NoError(b, r.Init())
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			require.NoError(b, r.WaitFor(context.Background(), l.last))
			cancel()
			<-done
			b.StopTimer()
			require.NoError(b, db.Close())
			b.StartTimer()
		}
		b.ReportMetric(float64(l.last)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(l.last)*float64(b.N)/float64(batches), "events/batch")
	})
	b.Run("rebuild", func(b *testing.B) { buildWith(b, l, l.store, app.Projections()) })
}
