package projections_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
)

// The benchmark's log: rebuildMemories memories with rebuildRounds events each, appended by
// rebuildWriters goroutines.
const (
	rebuildMemories = 20_000
	rebuildRounds   = 5
	rebuildWriters  = 8
)

// rebuildLog is a store holding the benchmark's log, and the same log decoded in memory.
type rebuildLog struct {
	store  *eventstore.Store
	last   uint64
	events []domain.Event
}

// writeRebuildLog appends the benchmark's log to a fresh store: a create, an update, a
// reinforce, a promote (or another reinforce for a memory created active) and an update of
// its tags for each memory. With spread, it goes round by round, so that a memory's events are
// spread over the whole log (the hardest case for the views' locality); without, each writer
// takes its memories one after the other through their whole life, as clients working through
// the API do.
func writeRebuildLog(b *testing.B, spread bool) *rebuildLog {
	return writeLogOf(b, spread, rebuildMemories)
}

// writeLogOf is writeRebuildLog with memories memories (a multiple of rebuildWriters).
func writeLogOf(b *testing.B, spread bool, memories int) *rebuildLog {
	b.Helper()
	l := appendByWriters(b, uint64(memories*rebuildRounds), func(store *eventstore.Store, w int) error {
		return appendShare(store, w, spread, memories)
	})
	l.readBack(b)
	return l
}

// appendByWriters appends to a fresh store from rebuildWriters goroutines, each running
// share, and checks that the log then holds want events.
func appendByWriters(b *testing.B, want uint64, share func(store *eventstore.Store, w int) error) *rebuildLog {
	b.Helper()
	store := openStore(b, b.TempDir(), eventstore.FsyncInterval)
	start := time.Now()
	errs := make(chan error, rebuildWriters)
	var wg sync.WaitGroup
	for w := range rebuildWriters {
		wg.Go(func() { errs <- share(store, w) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	l := &rebuildLog{store: store}
	var err error
	l.last, err = store.LastSeq(context.Background())
	require.NoError(b, err)
	require.Equal(b, want, l.last)
	b.Logf("wrote %d events in %s (%.0f appends/s)", l.last, time.Since(start).Round(time.Millisecond),
		float64(l.last)/time.Since(start).Seconds())
	return l
}

// readBack reads the whole log decoded into l.events, for the apply-only benchmarks.
func (l *rebuildLog) readBack(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan domain.Event, 1024)
	go l.store.Follow(ctx, 1, out)
	l.events = make([]domain.Event, 0, l.last)
	for len(l.events) < int(l.last) {
		select {
		case ev := <-out:
			l.events = append(l.events, ev)
		case <-time.After(waitTimeout):
			b.Fatalf("read %d of %d events", len(l.events), l.last)
		}
	}
}

// appendShare appends the events of writer w's share of the memories.
func appendShare(store *eventstore.Store, w int, spread bool, memories int) error {
	ctx := context.Background()
	n := memories / rebuildWriters
	ids := make([]string, n)
	last := make([]uint64, n)
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for step := range rebuildRounds * n {
		round, i := step/n, step%n
		if !spread {
			round, i = step%rebuildRounds, step/rebuildRounds
		}
		{
			candidate := i%2 == 0
			var p domain.Payload
			switch round {
			case 0:
				ids[i] = uuid.Must(uuid.NewV7()).String()
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
			ev := domain.NewEvent(ids[i], domain.Meta{
				EventID: uuid.Must(uuid.NewV7()).String(), Actor: fmt.Sprintf("writer-%d", w), Note: "bench",
				Time: t0.Add(time.Duration(round*n+i) * time.Millisecond),
			}, p)
			res, err := store.Append(ctx, last[i], ev)
			if err != nil {
				return err
			}
			last[i] = res.Seq
		}
	}
	return nil
}

// sliceSource replays a decoded log from memory, then waits like a live log.
type sliceSource []domain.Event

func (s sliceSource) Follow(ctx context.Context, from uint64, out chan<- domain.Event) error {
	i := sort.Search(len(s), func(i int) bool { return s[i].Seq >= from })
	for _, ev := range s[i:] {
		select {
		case out <- ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

// heldBudget is the byte budget of the builds' held writes: MEMLEDGER_REBUILD_HELD, or 0 for
// the default.
func heldBudget(b *testing.B) int64 { return int64(envCount(b, "MEMLEDGER_REBUILD_HELD", 0)) }

// envCount is the positive number in environment variable name, or def when it is not set.
func envCount(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// cpuTime is the CPU time the process has used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writtenBytes is the number of bytes the process has written so far (Linux's wchar), or -1.
func writtenBytes() int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

// BenchmarkRebuild100k measures a rebuild from a log of 100,000 events on 20,000 memories, in
// two shapes of log (see writeRebuildLog): "full" rebuilds the memories projection from the
// embedded store, "apply-only" from the same events decoded in memory (the bbolt side),
// "all-projections" every projection of the service (what memledger rebuild does), and
// "follow-only" reads and decodes the log without applying it (the log side).
func BenchmarkRebuild100k(b *testing.B) {
	for _, shape := range []struct {
		name   string
		spread bool
	}{{"spread", true}, {"lifecycle", false}} {
		b.Run(shape.name, func(b *testing.B) { benchmarkRebuild(b, writeRebuildLog(b, shape.spread)) })
	}
}

func benchmarkRebuild(b *testing.B, l *rebuildLog) {
	ps := []projections.Projection{projections.Memories{}}

	build := func(b *testing.B, src projections.Source) { buildWith(b, l, src, ps) }
	b.Run("full", func(b *testing.B) { build(b, l.store) })
	b.Run("apply-only", func(b *testing.B) { build(b, sliceSource(l.events)) })
	// Every projection the service keeps, as `memledger rebuild` runs them.
	b.Run("all-projections", func(b *testing.B) { buildWith(b, l, l.store, app.Projections()) })
	b.Run("follow-only", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ctx, cancel := context.WithCancel(context.Background())
			out := make(chan domain.Event, 4*projections.RebuildBatchSize)
			done := make(chan error, 1)
			go func() { done <- l.store.Follow(ctx, 1, out) }()
			for n := uint64(0); n < l.last; n++ {
				select {
				case <-out:
				case err := <-done:
					b.Fatalf("follow stopped after %d events: %v", n, err)
				}
			}
			cancel()
			<-done
		}
		b.ReportMetric(float64(l.last)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// logBucketUses logs what each bucket of the file at path holds, per event of a log of
// events.
func logBucketUses(b *testing.B, path string, events uint64) {
	var table strings.Builder
	fmt.Fprintf(&table, "%-22s %10s %12s %10s\n", "bucket", "keys", "bytes", "B/event")
	for _, u := range bucketUses(b, path) {
		fmt.Fprintf(&table, "%-22s %10d %12d %10.0f\n", u.name, u.keys, u.bytes, float64(u.bytes)/float64(events))
	}
	b.Log("\n" + table.String())
}

// buildWith rebuilds ps from src b.N times and reports the rate, the batch size, the file size
// and the bytes written.
func buildWith(b *testing.B, l *rebuildLog, src projections.Source, ps []projections.Projection) {
	// As memledger rebuild does.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	dir := b.TempDir()
	batches := 0
	var size int64
	written := writtenBytes()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		path := filepath.Join(dir, fmt.Sprintf("rebuild-%d.db", i))
		db, err := projections.BuildHeld(context.Background(), path, src, ps, l.last, projections.NewHeldBudget(heldBudget(b)), func(uint64) { batches++ })
		require.NoError(b, err)
		b.StopTimer()
		cps, err := db.Checkpoints()
		require.NoError(b, err)
		require.Equal(b, l.last, cps["memories"])
		require.NoError(b, db.Close())
		st, err := os.Stat(path)
		require.NoError(b, err)
		size = st.Size()
		if i == b.N-1 && testing.Verbose() {
			logBucketUses(b, path, l.last)
		}
		require.NoError(b, os.Remove(path))
		b.StartTimer()
	}
	b.ReportMetric(float64(l.last)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// The process's CPU: less noisy than the wall clock on a shared machine (the checks
	// between builds included).
	b.ReportMetric(float64(l.last)*float64(b.N)/(cpuTime()-cpu).Seconds(), "events/cpu-s")
	b.ReportMetric(float64(l.last)*float64(b.N)/float64(batches), "events/batch")
	b.ReportMetric(float64(size)/1e6, "MB/file")
	if written >= 0 {
		b.ReportMetric(float64(writtenBytes()-written)/1e6/float64(b.N), "MB-written/op")
	}
}
