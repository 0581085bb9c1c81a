package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// The history benchmarks' log: historyMemories memories with historyRounds events each, and
// historyStateEntries project-state entries changed historyStateChanges times each, appended by
// historyWriters goroutines: 100,000 events.
const (
	historyMemories     = 19_000
	historyRounds       = 5
	historyStateEntries = 100
	historyStateChanges = 50
	historyWriters      = 8
	historyEvents       = historyMemories*historyRounds + historyStateEntries*historyStateChanges
)

// historyT0 is the time of the history log's first event; event i is i milliseconds later.
var historyT0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// writeHistoryLog appends the benchmark's log straight to the ledger's store (as an import
// would) after what the ledger wrote at its first start (its admin token), waits until the
// projections have applied it, and returns the log's last position. Writer w takes its memories through
// their whole life one after the other (create, update, reinforce, promote or reinforce, re-tag)
// and its share of the state entries' changes.
func writeHistoryLog(b *testing.B, l *benchLedger) uint64 {
	b.Helper()
	ctx := context.Background()
	first, err := l.Main.Store.LastSeq(ctx)
	require.NoError(b, err)
	start := time.Now()
	errs := make(chan error, historyWriters)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var tick int64
	at := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		tick++
		return historyT0.Add(time.Duration(tick) * time.Millisecond)
	}
	for w := range historyWriters {
		wg.Go(func() {
			errs <- appendHistoryShare(ctx, l.Main.Store, w, at)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	last, err := l.Main.Store.LastSeq(ctx)
	require.NoError(b, err)
	require.Equal(b, first+historyEvents, last)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	require.NoError(b, l.Main.Runner.WaitFor(wctx, last))
	b.Logf("wrote and applied %d events in %s", last-first, time.Since(start).Round(time.Millisecond))
	return last
}

// appendHistoryShare appends writer w's share of the history log.
func appendHistoryShare(ctx context.Context, store *eventstore.Store, w int, at func() time.Time) error {
	meta := func() domain.Meta {
		return domain.Meta{EventID: uuid.Must(uuid.NewV7()).String(), Actor: fmt.Sprintf("writer-%d", w), Note: "bench", Time: at()}
	}
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := w; i < historyMemories; i += historyWriters {
		id := uuid.Must(uuid.NewV7()).String()
		candidate := i%2 == 0
		status := domain.StatusActive
		if candidate {
			status = domain.StatusCandidate
		}
		var last uint64
		for round := range historyRounds {
			var p domain.Payload
			switch round {
			case 0:
				p = domain.MemoryCreated{
					MemoryType: domain.MemoryTypes[i%len(domain.MemoryTypes)], Content: benchContent,
					Project: fmt.Sprintf("project-%d", i%20), Status: status, Confidence: 0.5,
					DomainTags: []string{"go", "nats"}, ValidUntil: &until,
				}
			case 1:
				p = domain.MemoryUpdated{Changed: []string{"content", "confidence"}, Content: benchContent[:150] + fmt.Sprintf(" (revised %d)", i), Confidence: 0.6}
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
			res, err := store.Append(ctx, last, domain.NewEvent(id, meta(), p))
			if err != nil {
				return err
			}
			last = res.Seq
		}
	}
	// The state entries are on project-0 and project-1; each change goes after the entry's last.
	for e := w; e < historyStateEntries; e += historyWriters {
		project := fmt.Sprintf("project-%d", e%2)
		for c := range historyStateChanges {
			ev := domain.NewEvent(project, meta(), domain.StateSet{Category: "fact", Key: fmt.Sprintf("key-%d", e),
				Value: fmt.Sprintf("value %d of entry %d", c, e), Source: "bench", Confidence: 1})
			if _, err := store.Append(ctx, eventstore.Unchecked, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// alternated runs each side once per iteration, in turn, timing each apart, and reports each
// side's rate (per second under unit, count units an operation) and each side's rate divided
// by the first's: both sides see the same machine.
func alternated(b *testing.B, unit string, count float64, sides []string, run func(side string) error) {
	b.Helper()
	spent := make([]time.Duration, len(sides))
	b.ResetTimer()
	for range b.N {
		for i, side := range sides {
			start := time.Now()
			if err := run(side); err != nil {
				b.Fatalf("%s: %v", side, err)
			}
			spent[i] += time.Since(start)
		}
	}
	b.StopTimer()
	rate := func(i int) float64 { return count * float64(b.N) / spent[i].Seconds() }
	for i, side := range sides {
		b.ReportMetric(rate(i), side+"-"+unit)
		if i > 0 {
			b.ReportMetric(rate(i)/rate(0), side+"/"+sides[0])
		}
	}
	b.ReportMetric(0, "ns/op")
}

// alternatedLatency is alternated for reads: it reports each side's mean latency in
// microseconds and each side's latency divided by the first's.
func alternatedLatency(b *testing.B, sides []string, run func(side string, i int) error) {
	b.Helper()
	spent := make([]time.Duration, len(sides))
	b.ResetTimer()
	for n := range b.N {
		for i, side := range sides {
			start := time.Now()
			if err := run(side, n); err != nil {
				b.Fatalf("%s: %v", side, err)
			}
			spent[i] += time.Since(start)
		}
	}
	b.StopTimer()
	for i, side := range sides {
		b.ReportMetric(float64(spent[i].Microseconds())/float64(b.N), side+"-µs")
		if i > 0 {
			b.ReportMetric(float64(spent[i])/float64(spent[0]), side+"/"+sides[0])
		}
	}
	b.ReportMetric(0, "ns/op")
}

// readFeed reads GET /events?from=1&to=<last> to its end and returns the events it carried.
func (l *benchLedger) readFeed(sse bool, last uint64) (int, error) {
	req, err := http.NewRequest("GET", l.URL+"/events?from=1&to="+fmt.Sprint(last), nil)
	if err != nil {
		return 0, err
	}
	if sse {
		req.Header.Set("Accept", "text/event-stream")
	}
	res, err := l.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(res.Body)
		return 0, fmt.Errorf("status %d: %s", res.StatusCode, data)
	}
	br := bufio.NewReaderSize(res.Body, 256<<10)
	marker, end := []byte(`{"seq":`), []byte(`{"end":"complete"`)
	if sse {
		marker, end = []byte("id: "), []byte(`data: {"end":"complete"`)
	}
	n, complete := 0, false
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, marker) {
			n++
		} else if bytes.HasPrefix(line, end) {
			complete = true
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return n, err
		}
	}
	if n != int(last) || !complete {
		return n, fmt.Errorf("the feed carried %d events (complete: %v), want %d", n, complete, last)
	}
	return n, nil
}

// BenchmarkHistory100k measures the history on a log of 100,000 events (19,000 memories
// through five events each, 100 state entries changed 50 times each):
//   - feed: GET /events from the log's start to its end, as NDJSON and as Server-Sent Events,
//     against the raw replay of the same log (eventstore.Read, the ordered consumer the feed
//     reads through, without decoding, encoding or HTTP), alternated in one run;
//   - asof: each read as of a position (the middle of the log) against the same read of the
//     current state, alternated: the projection reads, and the HTTP endpoints;
//   - export-import: memledger export of the whole log to a file, and memledger import of that
//     file into a new data directory (check, write the log, build the projections, sync).
func BenchmarkHistory100k(b *testing.B) {
	// The search index is left idle: it is measured on its own (BenchmarkSearch100k).
	l := startBenchLedger(b, withFsync(eventstore.FsyncInterval), func(l *ledger) { l.searchIdle = true })
	last := writeHistoryLog(b, l)
	ctx := context.Background()

	b.Run("feed", func(b *testing.B) {
		alternated(b, "events/s", float64(last), []string{"raw-replay", "ndjson", "sse"}, func(side string) error {
			switch side {
			case "raw-replay":
				n := 0
				err := l.Main.Store.Read(ctx, eventstore.ReadOptions{From: 1, To: last}, func(m eventstore.Message) error {
					n++
					return nil
				})
				if err == nil && uint64(n) != last {
					err = fmt.Errorf("read %d events, want %d", n, last)
				}
				return err
			case "ndjson":
				_, err := l.readFeed(false, last)
				return err
			default:
				_, err := l.readFeed(true, last)
				return err
			}
		})
	})

	// A memory of the log's middle, and the position half-way.
	var page struct {
		Memories []struct {
			ID string `json:"id"`
		} `json:"memories"`
	}
	data, err := l.send("GET", "/memory?limit=500", nil, http.StatusOK)
	require.NoError(b, err)
	require.NoError(b, json.Unmarshal(data, &page))
	ids := make([]string, len(page.Memories))
	for i, m := range page.Memories {
		ids[i] = m.ID
	}
	mid := last / 2
	db := l.Main.DB
	b.Run("asof/projection/memory", func(b *testing.B) {
		alternatedLatency(b, []string{"current", "as-of"}, func(side string, i int) error {
			var data []byte
			var err error
			if side == "current" {
				data, err = db.GetMemory(ids[i%len(ids)])
			} else {
				data, err = db.MemoryAsOf(ids[i%len(ids)], last-1)
			}
			if err == nil && data == nil {
				err = fmt.Errorf("memory %s not found", ids[i%len(ids)])
			}
			return err
		})
	})
	for _, q := range []struct{ name, path string }{
		{"memory", "/memory/%s"},
		{"list", "/memory?limit=50"},
		{"list-status", "/memory?status=candidate&limit=50"},
		{"list-project", "/memory?project=project-3&limit=50"},
		{"state", "/project/state?project=project-0"},
		{"state-all", "/project/state"},
	} {
		b.Run("asof/http/"+q.name, func(b *testing.B) {
			alternatedLatency(b, []string{"current", "as-of"}, func(side string, i int) error {
				path := q.path
				if strings.Contains(path, "%s") {
					path = fmt.Sprintf(path, ids[i%len(ids)])
				}
				if side == "as-of" {
					at := fmt.Sprint(mid)
					if strings.HasPrefix(q.path, "/memory/") {
						at = fmt.Sprint(last - 1) // the memories of the first page were created late
					}
					path += map[bool]string{true: "&", false: "?"}[strings.Contains(path, "?")] + "as_of=" + url.QueryEscape(at)
				}
				_, err := l.send("GET", path, nil, http.StatusOK)
				return err
			})
		})
	}

	var stopOnce sync.Once
	dir := b.TempDir()
	runs := 0 // the runs of the sub-benchmark (it is run more than once) write apart
	b.Run("export-import", func(b *testing.B) {
		stopOnce.Do(l.ledger.stop)
		var exported, imported time.Duration
		b.ResetTimer()
		for range b.N {
			runs++
			i := runs
			file := filepath.Join(dir, fmt.Sprintf("export-%d.ndjson", i))
			start := time.Now()
			code, out, errOut := runAppWithin(b, 10*time.Minute, "export", "--data", l.ledger.cfg.Data, "--out", file)
			exported += time.Since(start)
			require.Equal(b, 0, code, "stdout: %s\nstderr: %s", out, errOut)
			start = time.Now()
			code, out, errOut = runAppWithin(b, 10*time.Minute, "import", "--data", filepath.Join(dir, fmt.Sprintf("imported-%d", i)), file)
			imported += time.Since(start)
			require.Equal(b, 0, code, "stdout: %s\nstderr: %s", out, errOut)
			b.Logf("import %d: %s", i, strings.Join(slices.DeleteFunc(strings.Split(out, "\n"), func(l string) bool {
				return !strings.Contains(l, "events/s") && !strings.Contains(l, "done in")
			}), "; "))
			os.Remove(file)
		}
		b.StopTimer()
		b.ReportMetric(float64(last)*float64(b.N)/exported.Seconds(), "export-events/s")
		b.ReportMetric(float64(last)*float64(b.N)/imported.Seconds(), "import-events/s")
		b.ReportMetric(0, "ns/op")
	})
}
