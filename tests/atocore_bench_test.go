package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/handlers/atocore"
	"github.com/memledger/memledger/handlers/atocore/atocoretest"
	"github.com/stretchr/testify/require"
)

// BenchmarkImportAtoCore runs import-atocore on a database of 100,000 memories with 300,000
// audit rows (atocoretest.Generate) into an empty data directory: reading, mapping, writing
// through the command layer, waiting for the projections and the integrity run. It reports
// the import's own rates.
func BenchmarkImportAtoCore(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("MEMLEDGER_BENCH_ATOCORE_MEMORIES")); err == nil && v > 0 {
		n = v // a smaller database, to look at the import with a profiler
	}
	path := filepath.Join(b.TempDir(), "atocore.db")
	require.NoError(b, atocoretest.Generate(path, n))
	var rows, events, seconds float64
	for b.Loop() {
		var out, errOut bytes.Buffer
		code := app.Run(context.Background(), []string{"import-atocore", "--json", "--data", b.TempDir(), path}, &out, &errOut)
		require.Equal(b, 0, code, "stderr: %s", errOut.String())
		var rep atocore.Report
		require.NoError(b, json.Unmarshal(out.Bytes(), &rep))
		require.Equal(b, 3*n+n/10+1, rep.EventsWritten, "three audit rows a memory, a reconciliation for one in ten, one project")
		rows, events, seconds = rows+float64(rep.TotalRows()), events+float64(rep.EventsWritten), seconds+rep.Seconds
	}
	b.ReportMetric(rows/seconds, "rows/s")
	b.ReportMetric(events/seconds, "events/s")
}
