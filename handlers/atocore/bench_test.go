package atocore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/memledger/memledger/handlers/atocore"
	"github.com/memledger/memledger/handlers/atocore/atocoretest"
	"github.com/stretchr/testify/require"
)

// BenchmarkBuild100k reads and maps a database of 100,000 memories with 300,000 audit rows
// (the writing side is measured by tests/BenchmarkImportAtoCore).
func BenchmarkBuild100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "atocore.db")
	require.NoError(b, atocoretest.Generate(path, 100_000))
	var rows, events int
	for b.Loop() {
		src, err := atocore.Open(context.Background(), path)
		require.NoError(b, err)
		plan, err := atocore.Build(context.Background(), src, atocore.Options{})
		require.NoError(b, err)
		src.Close()
		require.Equal(b, 10_000, len(plan.Report.Reconciled))
		rows, events = rows+plan.Report.TotalRows(), events+plan.Report.TotalEvents()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
