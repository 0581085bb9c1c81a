package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/memledger/memledger/projections"
)

// createRound runs n creates from clients concurrent clients.
func createRound(b *testing.B, l *benchLedger, n, clients int) {
	var next atomic.Int64
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := l.send("POST", "/memory", benchCreateBody, http.StatusCreated); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkHTTPCreateWithSearch measures what the search index costs the writes: rounds of
// 32-client HTTP creates, alternated on two ledgers in one process, one whose index is idle
// (none), one whose index follows the log beside the writes (indexed, what memledger does).
// After each round on the indexing ledger the benchmark waits, untimed, for the index to catch
// up, and reports how far behind it was when the round's last create answered (lag-events)
// and how long it took to catch up (lag-ms): what a search misses, for how long.
func BenchmarkHTTPCreateWithSearch(b *testing.B) {
	const round, clients = 500, 32
	for _, fsync := range benchFsyncModes {
		b.Run("fsync="+fsync, func(b *testing.B) {
			none := startBenchLedger(b, withFsync(fsync), func(l *ledger) { l.searchIdle = true })
			indexed := startBenchLedger(b, withFsync(fsync))
			var tNone, tIndexed, lagTime time.Duration
			var lagEvents uint64
			for b.Loop() {
				start := time.Now()
				createRound(b, none, round, clients)
				t1 := time.Now()
				createRound(b, indexed, round, clients)
				t2 := time.Now()
				tNone, tIndexed = tNone+t1.Sub(start), tIndexed+t2.Sub(t1)
				last, err := indexed.Main.Store.LastSeq(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				lagEvents += last - min(last, indexed.Main.Search.Applied())
				if err := indexed.Main.Search.WaitFor(context.Background(), last); err != nil {
					b.Fatal(err)
				}
				lagTime += time.Since(t2)
			}
			n := float64(round * b.N)
			b.ReportMetric(n/tNone.Seconds(), "none/s")
			b.ReportMetric(n/tIndexed.Seconds(), "indexed/s")
			b.ReportMetric(tNone.Seconds()/tIndexed.Seconds(), "indexed/none")
			b.ReportMetric(float64(lagEvents)/float64(b.N), "lag-events")
			b.ReportMetric(float64(lagTime.Milliseconds())/float64(b.N), "lag-ms")
		})
	}
}

// searchWords are the words the search benchmark's memories are made of: a few frequent, many
// rare, as in text.
var searchWords = func() []string {
	var w []string
	for i := range 2000 {
		w = append(w, fmt.Sprintf("w%dx", i))
	}
	return w
}()

// benchText is a memory's content of about 30 words drawn with a skew towards the first words.
func benchText(r *rand.Rand) string {
	out := make([]byte, 0, 256)
	for i := range 30 {
		if i > 0 {
			out = append(out, ' ')
		}
		k := int(float64(len(searchWords)) * r.Float64() * r.Float64() * r.Float64())
		out = append(out, searchWords[k]...)
	}
	return string(out)
}

// BenchmarkSearch100k indexes 100,000 memories (created, then a fifth of them updated: 120,000
// events) through the log, reports the rate of a rebuild of the index and its size on disk,
// then the latency of searches of one to three words over it.
func BenchmarkSearch100k(b *testing.B) {
	n := 100000
	if v := os.Getenv("MEMLEDGER_BENCH_MEMORIES"); v != "" {
		fmt.Sscan(v, &n)
	}
	l := startBenchLedger(b, withFsync("interval"), func(l *ledger) { l.searchIdle = true })
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, n)
	bodies := make(chan int, 64)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 32 {
		wg.Go(func() {
			for i := range bodies {
				r := rand.New(rand.NewPCG(uint64(i), 7))
				body, _ := json.Marshal(map[string]any{"memory_type": "knowledge", "content": benchText(r),
					"project": fmt.Sprintf("p-%d", i%20), "domain_tags": []string{searchWords[i%50]}})
				data, err := l.send("POST", "/memory", body, http.StatusCreated)
				if err != nil {
					failed.Store(err)
					return
				}
				var m struct {
					ID string `json:"id"`
				}
				json.Unmarshal(data, &m)
				ids[i] = m.ID
			}
		})
	}
	for i := range n {
		bodies <- i
	}
	close(bodies)
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 5 {
		body, _ := json.Marshal(map[string]any{"content": benchText(r)})
		if _, err := l.send("PUT", "/memory/"+ids[i], body, http.StatusOK); err != nil {
			b.Fatal(err)
		}
	}
	last, err := l.Main.Store.LastSeq(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	cpu0 := cpuTime(b)
	start := time.Now()
	s, err := projections.BuildSearch(context.Background(), filepath.Join(dir, "search.bleve"), l.Main.Store, last, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rate := float64(last) / time.Since(start).Seconds()
	cpuRate := float64(last) / (cpuTime(b) - cpu0).Seconds()
	size := dirSize(b, filepath.Join(dir, "search.bleve"))

	queries := []string{"w3x", "w100x w7x", "w1500x", `"w1x w2x"`, "w12*", "w5x w50x w500x"}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t := time.Now()
		if _, err := s.Search(context.Background(), projections.SearchQuery{Text: queries[i%len(queries)], Now: time.Now(), Limit: 20}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(rate, "rebuild-events/s")
	b.ReportMetric(cpuRate, "rebuild-events/cpu-s")
	b.ReportMetric(float64(size)/float64(n)*100000/(1<<20), "MiB/100k")
}

// cpuTime is the CPU time the process has used: on a machine shared with other work, a rate
// per CPU second says what the work costs, whatever share of the machine it got.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func dirSize(b *testing.B, dir string) int64 {
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}
