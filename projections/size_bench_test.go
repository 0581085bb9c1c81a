package projections_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
)

// sizeMemories is how many memories BenchmarkProjectionsSize writes.
const sizeMemories = 5_000

// sizeLog is a log of memories memories with rounds events each (1 to 5: created, updated,
// reinforced, promoted or reinforced again, re-tagged), each memory through its whole life in
// turn, as clients working through the API write it; positions from 1.
func sizeLog(memories, rounds int) []domain.Event {
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]domain.Event, 0, memories*rounds)
	for i := range memories {
		id := uuid.Must(uuid.NewV7()).String()
		candidate := i%2 == 0
		for round := range rounds {
			var p domain.Payload
			switch round {
			case 0:
				status := domain.StatusActive
				if candidate {
					status = domain.StatusCandidate
				}
				p = domain.MemoryCreated{
					MemoryType: domain.MemoryTypes[i%len(domain.MemoryTypes)], Content: realisticContent,
					Project: fmt.Sprintf("project-%d", i%50), Status: status, Confidence: 0.5,
					SourceChunkID: fmt.Sprintf("chunk-%d", i), DomainTags: []string{"go", "nats"}, ValidUntil: &until,
				}
			case 1:
				p = domain.MemoryUpdated{Changed: []string{"content", "confidence"},
					Content: realisticContent[:150] + fmt.Sprintf(" (revised %d)", i), Confidence: 0.6}
			case 2:
				p = domain.MemoryReinforced{Delta: 0.05}
			case 3:
				if candidate {
					p = domain.MemoryPromoted{}
				} else {
					p = domain.MemoryReinforced{Delta: 0.05}
				}
			case 4:
				p = domain.MemoryUpdated{Changed: []string{"domain_tags"}, DomainTags: []string{"go", "nats", "bbolt"}}
			}
			ev := domain.NewEvent(id, domain.Meta{
				EventID: uuid.Must(uuid.NewV7()).String(), Actor: fmt.Sprintf("writer-%d", i%8), Note: "bench",
				Time: t0.Add(time.Duration(len(evs)) * time.Millisecond),
			}, p)
			ev.Seq = uint64(len(evs) + 1)
			evs = append(evs, ev)
		}
	}
	return evs
}

// bucketUse is what one top-level bucket holds: its keys and the bytes of the pages it uses
// (bbolt's in-use bytes: keys, values and their headers, branch and leaf pages).
type bucketUse struct {
	name  string
	keys  int
	bytes int
}

// bucketUses reads every top-level bucket's use from the file at path.
func bucketUses(tb testing.TB, path string) []bucketUse {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(tb, err)
	defer db.Close()
	var out []bucketUse
	require.NoError(tb, db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			st := b.Stats()
			out = append(out, bucketUse{name: string(name), keys: st.KeyN, bytes: st.LeafInuse + st.BranchInuse})
			return nil
		})
	}))
	slices.SortFunc(out, func(a, b bucketUse) int { return b.bytes - a.bytes })
	return out
}

// BenchmarkProjectionsSize applies logs of sizeMemories memories with 1 and 5 events each to
// every projection of the service, the way the live runner does (batches of 4 events), and
// reports what each bucket costs per memory and per event (bytes in use, keys) and the file's
// size per memory. Its log lines are the table; its metrics the totals.
func BenchmarkProjectionsSize(b *testing.B) {
	for _, rounds := range []int{1, 5} {
		b.Run(fmt.Sprintf("events-per-memory=%d", rounds), func(b *testing.B) {
			evs := sizeLog(sizeMemories, rounds)
			last := evs[len(evs)-1].Seq
			var path string
			for i := 0; i < b.N; i++ {
				path = filepath.Join(b.TempDir(), "projections.db")
				db, err := projections.Open(path, false)
				require.NoError(b, err)
				r := &projections.Runner{DB: db, Source: sliceSource(evs), Projections: app.Projections(), BatchSize: 4, Until: last, Logger: quietLogger()}
				require.NoError(b, r.Init())
				require.NoError(b, r.Run(context.Background()))
				require.NoError(b, db.Close())
			}
			b.StopTimer()
			st, err := os.Stat(path)
			require.NoError(b, err)
			uses := bucketUses(b, path)
			total := 0
			var table strings.Builder
			fmt.Fprintf(&table, "%d memories, %d events; file %d bytes (%.0f per memory)\n", sizeMemories, len(evs), st.Size(), float64(st.Size())/sizeMemories)
			fmt.Fprintf(&table, "%-22s %10s %12s %12s %10s\n", "bucket", "keys", "bytes", "B/memory", "B/event")
			for _, u := range uses {
				total += u.bytes
				if u.bytes < 1000 {
					continue
				}
				fmt.Fprintf(&table, "%-22s %10d %12d %12.0f %10.0f\n", u.name, u.keys, u.bytes, float64(u.bytes)/sizeMemories, float64(u.bytes)/float64(len(evs)))
			}
			fmt.Fprintf(&table, "%-22s %10s %12d %12.0f %10.0f", "in use, every bucket", "", total, float64(total)/sizeMemories, float64(total)/float64(len(evs)))
			b.Log("\n" + table.String()) // whole with -v
			b.ReportMetric(float64(st.Size())/sizeMemories, "file-B/memory")
			b.ReportMetric(float64(total)/sizeMemories, "inuse-B/memory")
			b.ReportMetric(float64(total)/float64(len(evs)), "inuse-B/event")
		})
	}
}

// BenchmarkAuditReads measures the reads of the audit on the log of BenchmarkProjectionsSize
// with 5 events per memory, applied as the live runner does: a memory's whole audit, the 50
// most recent entries, one entry by its event id (an idempotent retry's answer), and a memory
// as of its first and its third event.
func BenchmarkAuditReads(b *testing.B) {
	evs := sizeLog(2_000, 5)
	last := evs[len(evs)-1].Seq
	db, err := projections.Open(filepath.Join(b.TempDir(), "projections.db"), false)
	require.NoError(b, err)
	b.Cleanup(func() { db.Close() })
	r := &projections.Runner{DB: db, Source: sliceSource(evs), Projections: app.Projections(), BatchSize: 4, Until: last, Logger: quietLogger()}
	require.NoError(b, r.Init())
	require.NoError(b, r.Run(context.Background()))
	pick := func(i int) domain.Event { return evs[(i*7919)%len(evs)] }
	b.Run("memory-audit", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			entries, err := db.MemoryAudit(pick(i).AggregateID)
			if err != nil || len(entries) != 5 {
				b.Fatal(err, len(entries))
			}
		}
	})
	b.Run("recent-50", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			entries, err := db.RecentAudit(projections.AuditFilter{Limit: 50})
			if err != nil || len(entries) != 50 {
				b.Fatal(err, len(entries))
			}
		}
	})
	b.Run("by-event-id", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			entry, err := db.AuditByEventID(pick(i).ID)
			if err != nil || entry == nil {
				b.Fatal(err)
			}
		}
	})
	for _, nth := range []int{0, 2} {
		b.Run(fmt.Sprintf("as-of-event-%d", nth+1), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ev := evs[((i*7919)%(len(evs)/5))*5+nth]
				m, err := db.MemoryAsOf(ev.AggregateID, ev.Seq)
				if err != nil || m == nil {
					b.Fatal(err)
				}
			}
		})
	}
}
