package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/projections"
	bolt "go.etcd.io/bbolt"
)

// scaleN is the number of memories BenchmarkScale builds: MEMLEDGER_SCALE_N, 100,000 unless set.
func scaleN(b *testing.B) int {
	n := 100_000
	if v := os.Getenv("MEMLEDGER_SCALE_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			b.Fatalf("MEMLEDGER_SCALE_N=%q: want a number of memories of at least 100", v)
		}
	}
	return n
}

// scaleProjects are the projects BenchmarkScale spreads its memories over.
const scaleProjects = 20

// scaleBody is the POST /memory body of the i-th memory: a project of scaleProjects, a type of
// three, a third of them candidates.
func scaleBody(i int) []byte {
	status := "active"
	if i%3 == 0 {
		status = "candidate"
	}
	data, _ := json.Marshal(map[string]any{
		"memory_type": []string{"knowledge", "preference", "project"}[i/3%3],
		"content":     fmt.Sprintf("%s (memory %d)", benchContent, i),
		"project":     fmt.Sprintf("p%02d", i%scaleProjects),
		"status":      status,
		"domain_tags": []string{"go", "nats"},
	})
	return data
}

// procStatus reads a field of /proc/self/status in bytes (0 where the system does not say).
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// resetPeak starts the process's peak resident size (VmHWM) again from its current size.
func resetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchmarkScale builds a ledger of MEMLEDGER_SCALE_N memories (100,000 by default) through
// the HTTP API, with 32 clients and fsync interval, the search index idle, and reports: each
// endpoint's p50 and p99 on it (one client, 50 requests each), the time a restart takes until
// /health answers and a write succeeds, the rebuild's rate, the search index's build by serve
// after it, the process's peak resident size through each phase, the heap, and the files'
// sizes, with the load average before each timed phase. Run it with -benchtime 1x:
//
//	go test ./tests -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 2h
//	MEMLEDGER_SCALE_N=1000000 go test ./tests -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 6h
func BenchmarkScale(b *testing.B) {
	n := scaleN(b)
	for range b.N {
		l := startBenchLedger(b, withFsync(eventstore.FsyncInterval), func(l *ledger) { l.searchIdle = true })
		report := func(name string, v float64, unit string) {
			b.ReportMetric(v, unit)
			b.Logf("%-58s %14.2f %s", name, v, unit)
		}
		b.Logf("building %d memories through POST /memory with 32 clients; load average %s", n, loadAverage())

		// Build.
		resetPeak()
		ids := make([]string, n)
		var next atomic.Int64
		var failed atomic.Value
		start := time.Now()
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					data, err := l.send("POST", "/memory", scaleBody(i), http.StatusCreated)
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
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			b.Fatal(err)
		}
		built := time.Since(start)
		report("build: creates/s (32 clients)", float64(n)/built.Seconds(), "creates/s")
		report("build: peak resident MB", float64(procStatus("VmHWM"))/(1<<20), "build-peak-MB")
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		report("heap in use after the build, after GC, MB", float64(ms.HeapInuse)/(1<<20), "heap-MB")
		report("resident after the build MB", float64(procStatus("VmRSS"))/(1<<20), "rss-MB")

		// Endpoints, one client.
		candidate := ids[0] // i%3 == 0: a candidate
		recent, err := l.send("GET", "/admin/audit/recent?limit=1", nil, http.StatusOK)
		if err != nil {
			b.Fatal(err)
		}
		var entries struct {
			Entries []struct {
				Actor string `json:"actor"`
			} `json:"entries"`
		}
		if err := json.Unmarshal(recent, &entries); err != nil || len(entries.Entries) == 0 {
			b.Fatalf("recent audit: %v: %s", err, recent)
		}
		actor := entries.Entries[0].Actor
		for _, ep := range []struct{ name, path string }{
			{"GET /memory/{id}", "/memory/" + ids[n/2]},
			{"GET /memory/{id}/audit", "/memory/" + ids[n/2] + "/audit"},
			{"GET /memory?limit=50", "/memory?limit=50"},
			{"GET /memory?status=candidate&limit=50", "/memory?status=candidate&limit=50"},
			{"GET /memory?status&project&memory_type&limit=50", "/memory?status=candidate&project=p03&memory_type=knowledge&limit=50"},
			{"GET /memory?project&memory_type (no match)&limit=50", "/memory?project=p03&memory_type=identity&limit=50"},
			{"GET /admin/audit/recent?limit=50", "/admin/audit/recent?limit=50"},
			{"GET /admin/audit/recent?action&actor&limit=50", "/admin/audit/recent?action=created&actor=" + actor + "&limit=50"},
			{"GET /admin/audit/recent?action=promoted (none)", "/admin/audit/recent?action=promoted&limit=50"},
			{"GET /admin/dashboard", "/admin/dashboard"},
			{"GET /admin/integrity", "/admin/integrity"},
			{"GET /ui/", "/ui/"},
			{"GET /ui/review", "/ui/review"},
			{"GET /ui/review?project", "/ui/review?project=p03"},
			{"GET /ui/memory/{id}", "/ui/memory/" + candidate},
		} {
			var lat []time.Duration
			for range 50 {
				t0 := time.Now()
				if _, err := l.send("GET", ep.path, nil, http.StatusOK); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.Logf("%-58s p50 %8.2f ms  p99 %8.2f ms", ep.name, millis(lat[len(lat)/2]), millis(lat[len(lat)*99/100]))
		}

		// Files.
		dir := l.ledger.cfg.Data
		report("projections file MB", float64(dirSize(b, filepath.Join(dir, "projections.db")))/(1<<20), "projections-MB")
		report("log (nats directory) MB", float64(dirSize(b, filepath.Join(dir, "nats")))/(1<<20), "log-MB")
		// Per memory, the pages in use: the live file runs up to 16 MiB ahead of them (bbolt
		// grows a file mapped ahead of its size that much at a time).
		var inUse int64
		if err := l.Main.DB.Bolt().View(func(tx *bolt.Tx) error { inUse = tx.Size(); return nil }); err != nil {
			b.Fatal(err)
		}
		report("projections bytes per memory", float64(inUse)/float64(n), "B/memory")

		// The bbolt projections built again from the log, beside the idle service: what a
		// rebuild costs without the search index.
		last := l.ledger.lastSeq()
		runtime.GC()
		resetPeak()
		t0 := time.Now()
		rebuilt, err := projections.Build(context.Background(), filepath.Join(b.TempDir(), "projections.db"), l.Main.Store, app.Projections(), last, nil)
		if err != nil {
			b.Fatal(err)
		}
		secs := time.Since(t0).Seconds()
		rebuilt.Close()
		report("projections build from the log: events/s", float64(last)/secs, "build-ev/s")
		report("projections build: peak resident MB (the service's included)", float64(procStatus("VmHWM"))/(1<<20), "projbuild-peak-MB")

		// Restart: until /health answers and a write succeeds.
		l.ledger.stop()
		resetPeak()
		b.Logf("restart; load average %s", loadAverage())
		t0 = time.Now()
		l.ledger.start()
		l.URL = l.ledger.URL
		for {
			res, err := l.client.Get(l.URL + "/health")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		report("restart until /health answers, s", time.Since(t0).Seconds(), "restart-health-s")
		if _, err := l.send("POST", "/memory", scaleBody(n), http.StatusCreated); err != nil {
			b.Fatal(err)
		}
		report("restart until /health answers and a write succeeds, s", time.Since(t0).Seconds(), "restart-s")
		report("restart: peak resident MB", float64(procStatus("VmHWM"))/(1<<20), "restart-peak-MB")

		// Rebuild, the service stopped: the bbolt projections; the search index is set aside
		// for serve to build again in the background.
		l.ledger.stop()
		runtime.GC()
		resetPeak()
		b.Logf("rebuild; load average %s", loadAverage())
		t0 = time.Now()
		cpu0 := processCPU()
		code, out, errOut := runAppWithin(b, 6*time.Hour, "rebuild", "--data", dir)
		if code != 0 {
			b.Fatalf("rebuild: %d: %s %s", code, out, errOut)
		}
		secs = time.Since(t0).Seconds()
		cpu := (processCPU() - cpu0).Seconds()
		report("rebuild: events/s (the command: every bbolt projection)", float64(last+1)/secs, "rebuild-ev/s")
		report("rebuild: seconds", secs, "rebuild-s")
		report("rebuild: events per CPU second of the process", float64(last+1)/cpu, "rebuild-ev/cpu-s")
		report("rebuild: peak resident MB", float64(procStatus("VmHWM"))/(1<<20), "rebuild-peak-MB")

		// The search index built again by serve, in bulk, in the background.
		l.ledger.searchIdle = false
		resetPeak()
		b.Logf("search index catch-up; load average %s", loadAverage())
		t0 = time.Now()
		cpu0 = processCPU()
		l.ledger.start() // stopped again by the cleanup
		if err := l.ledger.Main.Search.WaitFor(context.Background(), last+1); err != nil {
			b.Fatal(err)
		}
		secs = time.Since(t0).Seconds()
		report("search index built again by serve after the rebuild: events/s", float64(last+1)/secs, "search-ev/s")
		report("search index: events per CPU second of the process", float64(last+1)/(processCPU()-cpu0).Seconds(), "search-ev/cpu-s")
		report("search index build: peak resident MB (the service's included)", float64(procStatus("VmHWM"))/(1<<20), "search-peak-MB")
		b.Logf("load average at the end %s", loadAverage())
	}
}

// processCPU is the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loadAverage is the machine's load average as /proc/loadavg gives it.
func loadAverage() string {
	data, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(data))[:min(3, len(strings.Fields(string(data))))], " ")
}
