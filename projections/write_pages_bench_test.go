package projections_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/projections"
)

// pagesPreload is how many memories BenchmarkCreatePages writes before it measures, so that
// the trees are as deep as a working ledger's.
const pagesPreload = 20_000

// BenchmarkCreatePages applies creates one per transaction, as the live runner does for a
// single writer, on projections already holding pagesPreload memories, and reports the bbolt
// pages each commit writes (pages/create: bbolt's TxStats.Write, the meta page included) and
// the time of a create's transaction; each sub-benchmark leaves one projection out, so that
// the difference from "all" is what that projection writes.
func BenchmarkCreatePages(b *testing.B) {
	names := []string{"all"}
	for _, p := range app.Projections() {
		names = append(names, "without-"+p.Name())
	}
	for _, name := range names {
		b.Run(name, func(b *testing.B) {
			var ps []projections.Projection
			for _, p := range app.Projections() {
				if "without-"+p.Name() != name {
					ps = append(ps, p)
				}
			}
			evs := sizeLog(pagesPreload+b.N, 1)
			db, err := projections.Open(filepath.Join(b.TempDir(), "projections.db"), false)
			require.NoError(b, err)
			defer db.Close()
			r := &projections.Runner{DB: db, Source: sliceSource(evs), Projections: ps, BatchSize: 4, Until: pagesPreload, Logger: quietLogger()}
			require.NoError(b, r.Init())
			require.NoError(b, r.Run(context.Background()))
			if name == "all" && testing.Verbose() {
				require.NoError(b, db.View(func(tx *bolt.Tx) error {
					return tx.ForEach(func(n []byte, bk *bolt.Bucket) error {
						st := bk.Stats()
						b.Logf("%-22s depth %d leaves %d branches %d inline %d", n, st.Depth, st.LeafPageN, st.BranchPageN, st.InlineBucketN)
						return nil
					})
				}))
			}
			before := db.Bolt().Stats().TxStats
			r = &projections.Runner{DB: db, Source: sliceSource(evs), Projections: ps, BatchSize: 1, Until: uint64(len(evs)), Logger: quietLogger()}
			require.NoError(b, r.Init())
			b.ResetTimer()
			start := time.Now()
			require.NoError(b, r.Run(context.Background()))
			elapsed := time.Since(start)
			b.StopTimer()
			after := db.Bolt().Stats().TxStats
			n := float64(b.N)
			b.ReportMetric(float64(after.GetWrite()-before.GetWrite())/n, "pages/create")
			b.ReportMetric(float64(after.GetSpill()-before.GetSpill())/n, "spilled/create")
			b.ReportMetric(float64(after.GetPageCount()-before.GetPageCount())/n, "allocated/create")
			b.ReportMetric(float64((after.GetSpillTime()-before.GetSpillTime())+(after.GetWriteTime()-before.GetWriteTime()))/n/1e3, "spill+write-µs/create")
			_ = elapsed
		})
	}
}
