package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/handlers/backup"
)

// BenchmarkBackup100k writes a ledger of 100,000 events through the HTTP API (20,000 memories,
// each created as a candidate, reinforced twice, promoted and updated, by 32 clients), then
// takes backups of it through the running service and restores each into a new data
// directory, reporting the backup's time and size and the restore's time (and the part of it
// the log's restore took). MEMLEDGER_BENCH_MEMORIES sets another number of memories.
func BenchmarkBackup100k(b *testing.B) {
	n := 20000
	if v := os.Getenv("MEMLEDGER_BENCH_MEMORIES"); v != "" {
		fmt.Sscan(v, &n)
	}
	l := startBenchLedger(b, withFsync("interval"))
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				body, _ := json.Marshal(map[string]any{"memory_type": "knowledge", "status": "candidate",
					"content": fmt.Sprintf("memory %d: %s", i, benchContent), "project": fmt.Sprintf("p-%d", i%20)})
				data, err := l.send("POST", "/memory", body, http.StatusCreated)
				if err != nil {
					failed.Store(err)
					return
				}
				var m struct {
					ID string `json:"id"`
				}
				json.Unmarshal(data, &m)
				for _, step := range []struct {
					method, path string
					body         []byte
				}{
					{"POST", "/memory/" + m.ID + "/reinforce", nil},
					{"POST", "/memory/" + m.ID + "/reinforce", nil},
					{"POST", "/memory/" + m.ID + "/promote", nil},
					{"PUT", "/memory/" + m.ID, []byte(fmt.Sprintf(`{"content":"memory %d, updated: %s"}`, i, benchContent))},
				} {
					if _, err := l.send(step.method, step.path, step.body, http.StatusOK); err != nil {
						failed.Store(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	last, err := l.Main.Store.LastSeq(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("ledger of %d events", last)
	logRestored := regexp.MustCompile(`the log restored in ([0-9.]+m?s)`)
	var backupTime, restoreTime, logTime time.Duration
	var size, logSize, projSize int64
	runs := 0
	for b.Loop() {
		runs++
		dir := filepath.Join(b.TempDir(), "backup")
		start := time.Now()
		var out, errOut bytes.Buffer
		if code := app.Run(context.Background(), []string{"backup", "--to", dir, "--data", l.Main.Config.Data, "--addr", l.Main.Addr()}, &out, &errOut); code != 0 {
			b.Fatalf("backup: %s%s", out.String(), errOut.String())
		}
		backupTime += time.Since(start)
		m, err := backup.Check(dir)
		if err != nil {
			b.Fatal(err)
		}
		if m.LastSeq != last {
			b.Fatalf("the backup holds %d events, the ledger %d", m.LastSeq, last)
		}
		size, logSize, projSize = 0, 0, 0
		for _, f := range m.Files {
			size += f.Size
			switch f.Name {
			case backup.LogFile:
				logSize = f.Size
			case backup.ProjectionsFile:
				projSize = f.Size
			}
		}
		target := filepath.Join(b.TempDir(), "restored")
		out.Reset()
		start = time.Now()
		if code := app.Run(context.Background(), []string{"restore", "--from", dir, "--data", target}, &out, &errOut); code != 0 {
			b.Fatalf("restore: %s%s", out.String(), errOut.String())
		}
		restoreTime += time.Since(start)
		if s := logRestored.FindStringSubmatch(out.String()); s != nil {
			d, _ := time.ParseDuration(s[1])
			logTime += d
		}
	}
	b.ReportMetric(backupTime.Seconds()/float64(runs), "backup-s")
	b.ReportMetric(float64(size)/1e6, "backup-MB")
	b.ReportMetric(float64(logSize)/1e6, "log-MB")
	b.ReportMetric(float64(projSize)/1e6, "projections-MB")
	b.ReportMetric(restoreTime.Seconds()/float64(runs), "restore-s")
	b.ReportMetric(logTime.Seconds()/float64(runs), "restore-log-s")
}
