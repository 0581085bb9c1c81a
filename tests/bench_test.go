package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// The benchmarks report throughput and latency as figures; none of them asserts a time.

// benchFsyncModes are the embedded server's two durability settings.
var benchFsyncModes = []string{eventstore.FsyncAlways, eventstore.FsyncInterval}

// benchContent is about 200 characters, the size of a typical memory.
var benchContent = strings.Repeat("The ledger keeps every change as an immutable event; ", 4)[:200]

// benchCreateBody is the body of every POST /memory of the benchmarks.
var benchCreateBody = func() []byte {
	data, err := json.Marshal(map[string]any{
		"memory_type": "knowledge", "content": benchContent, "project": "bench",
		"domain_tags": []string{"go", "nats"},
	})
	if err != nil {
		panic(err)
	}
	return data
}()

// benchLedger is a memledger started for a benchmark, with an HTTP client that keeps enough
// idle connections for every benchmark client.
type benchLedger struct {
	Main   *app.Main
	URL    string
	client *http.Client
	ledger *ledger
}

// startBenchLedger starts memledger in-process like startLedger (which needs a *testing.T),
// with the same options, and stops it when the benchmark ends.
func startBenchLedger(b *testing.B, opts ...func(*ledger)) *benchLedger {
	b.Helper()
	led := startLedger(b, opts...)
	m := led.Main
	transport := baseTransport.Clone() // not checked against the OpenAPI document: benchmarks measure the service
	transport.MaxIdleConns = 128
	transport.MaxIdleConnsPerHost = 128
	b.Cleanup(transport.CloseIdleConnections)
	return &benchLedger{Main: m, URL: "http://" + m.Addr(), client: &http.Client{Transport: tokenTransport{next: transport}}, ledger: led}
}

// send sends one request and reads the whole answer; a status other than want is an error.
func (l *benchLedger) send(method, path string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, l.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, data)
	}
	return data, nil
}

// createMemory creates a memory with benchCreateBody and returns its id.
func (l *benchLedger) createMemory() (string, error) {
	data, err := l.send("POST", "/memory", benchCreateBody, http.StatusCreated)
	if err != nil {
		return "", err
	}
	var m struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return "", err
	}
	return m.ID, nil
}

// seedMemories creates n memories over HTTP, a few at a time, and returns their ids.
func (l *benchLedger) seedMemories(b *testing.B, n int) []string {
	b.Helper()
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				id, err := l.createMemory()
				if err != nil {
					errs <- err
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	return ids
}

// runClients runs op b.N times, split among clients goroutines, and reports the operations
// per second under unit and the median and 99th percentile latency.
func runClients(b *testing.B, clients int, unit string, op func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := range clients {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < b.N && failed.Load() == nil; i = int(next.Add(1) - 1) {
				start := time.Now()
				if err := op(i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[c] = append(lat[c], time.Since(start))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	reportThroughput(b, unit, slices.Concat(lat...))
}

// reportThroughput reports b.N operations per second of the benchmark's time under unit,
// and the median and 99th percentile of lat.
func reportThroughput(b *testing.B, unit string, lat []time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(quantileMs(lat, 50), "p50-ms")
	b.ReportMetric(quantileMs(lat, 99), "p99-ms")
}

// quantileMs is the q-th percentile of lat in milliseconds; it sorts lat.
func quantileMs(lat []time.Duration, q int) float64 {
	slices.Sort(lat)
	return float64(lat[len(lat)*q/100].Microseconds()) / 1000
}

// BenchmarkHTTPCreate measures POST /memory round trips: decide, append with the expected
// sequence and the idempotency id, wait for the projection, answer.
func BenchmarkHTTPCreate(b *testing.B) {
	for _, fsync := range benchFsyncModes {
		b.Run("fsync="+fsync, func(b *testing.B) {
			l := startBenchLedger(b, withFsync(fsync))
			for _, clients := range []int{1, 32} {
				b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
					runClients(b, clients, "creates/s", func(int) error {
						_, err := l.createMemory()
						return err
					})
				})
			}
		})
	}
}

// BenchmarkHTTPGetMemory measures GET /memory/{id} over HTTP on a ledger of 1,000 memories.
func BenchmarkHTTPGetMemory(b *testing.B) {
	l := startBenchLedger(b, withFsync(eventstore.FsyncInterval))
	ids := l.seedMemories(b, 1000)
	for _, clients := range []int{1, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			runClients(b, clients, "gets/s", func(i int) error {
				_, err := l.send("GET", "/memory/"+ids[i%len(ids)], nil, http.StatusOK)
				return err
			})
		})
	}
}

// BenchmarkGetMemoryProjection measures DB.GetMemory, the projection read behind
// GET /memory/{id}, on a ledger of 1,000 memories.
func BenchmarkGetMemoryProjection(b *testing.B) {
	l := startBenchLedger(b, withFsync(eventstore.FsyncInterval))
	ids := l.seedMemories(b, 1000)
	db := l.Main.DB
	b.Run("sequential", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			data, err := db.GetMemory(ids[i%len(ids)])
			if err != nil || data == nil {
				b.Fatalf("memory %s: %v (%d bytes)", ids[i%len(ids)], err, len(data))
			}
		}
		reportThroughput(b, "gets/s", nil)
	})
	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := ids[int(next.Add(1))%len(ids)]
				if data, err := db.GetMemory(id); err != nil || data == nil {
					b.Errorf("memory %s: %v (%d bytes)", id, err, len(data))
					return
				}
			}
		})
		reportThroughput(b, "gets/s", nil)
	})
}

// benchRawEvent is the stored form of a memory.created event like those of BenchmarkHTTPCreate,
// under a type no projection knows: it has the same size on the wire and in the stream, and the
// projections read it and skip it.
var benchRawEvent = func() []byte {
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	data, err := eventstore.Encode(domain.NewEvent(uuid.NewString(), domain.Meta{
		EventID: uuid.NewString(), Actor: "api-http", Time: time.Now(),
	}, domain.MemoryCreated{
		MemoryType: domain.TypeKnowledge, Content: benchContent, Project: "bench",
		Status: domain.StatusActive, Confidence: 1, DomainTags: []string{"go", "nats"}, ValidUntil: &until,
	}))
	if err != nil {
		panic(err)
	}
	return bytes.Replace(data, []byte(`"type":"memory.created"`), []byte(`"type":"bench.raw"`), 1)
}()

// BenchmarkRawPublishBaseline measures JetStream's synchronous publish through the ledger's own
// connection, each message to a new subject with an expected last subject sequence of 0, as
// an append of a new memory is: the floor under BenchmarkHTTPCreate in the same run.
// "+msgid" also sets the message id (the event id), as Append does.
func BenchmarkRawPublishBaseline(b *testing.B) {
	for _, fsync := range benchFsyncModes {
		b.Run("fsync="+fsync, func(b *testing.B) {
			l := startBenchLedger(b, withFsync(fsync))
			js := l.Main.Store.JetStream()
			var subject atomic.Uint64
			publish := func(msgID bool) error {
				opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(0)}
				if msgID {
					opts = append(opts, jetstream.WithMsgID(uuid.NewString()))
				}
				_, err := js.Publish(context.Background(), fmt.Sprintf("ledger.bench.s%d", subject.Add(1)), benchRawEvent, opts...)
				return err
			}
			b.Run("expect-seq", func(b *testing.B) {
				runClients(b, 1, "publishes/s", func(int) error { return publish(false) })
			})
			b.Run("expect-seq+msgid", func(b *testing.B) {
				runClients(b, 1, "publishes/s", func(int) error { return publish(true) })
			})
			b.Run("expect-seq+msgid/clients=32", func(b *testing.B) {
				runClients(b, 32, "publishes/s", func(int) error { return publish(true) })
			})
		})
	}
}

// BenchmarkHTTPCreateVsRaw alternates, on one ledger, rounds of the raw baseline (one
// sequential publisher, as BenchmarkRawPublishBaseline's expect-seq) and rounds of HTTP creates
// by 1 and by 32 clients, and times each apart: both run under the same conditions, so their
// ratio holds on a machine whose speed drifts from one second to the next. One iteration is
// one round of each. Besides the rates and their ratio it reports each side's median latency.
func BenchmarkHTTPCreateVsRaw(b *testing.B) {
	const round = 500
	for _, fsync := range benchFsyncModes {
		for _, clients := range []int{1, 32} {
			b.Run(fmt.Sprintf("fsync=%s/clients=%d", fsync, clients), func(b *testing.B) {
				l := startBenchLedger(b, withFsync(fsync))
				js := l.Main.Store.JetStream()
				var subject atomic.Uint64
				var raw, creates time.Duration
				var rawLat []time.Duration
				createLat := make([][]time.Duration, clients)
				for b.Loop() {
					start := time.Now()
					for range round {
						t0 := time.Now()
						if _, err := js.Publish(context.Background(), fmt.Sprintf("ledger.bench.s%d", subject.Add(1)), benchRawEvent,
							jetstream.WithExpectLastSequencePerSubject(0)); err != nil {
							b.Fatal(err)
						}
						rawLat = append(rawLat, time.Since(t0))
					}
					mid := time.Now()
					var next atomic.Int64
					errs := make(chan error, clients)
					var wg sync.WaitGroup
					for c := range clients {
						wg.Go(func() {
							for next.Add(1) <= round {
								t0 := time.Now()
								if _, err := l.createMemory(); err != nil {
									errs <- err
									return
								}
								createLat[c] = append(createLat[c], time.Since(t0))
							}
						})
					}
					wg.Wait()
					close(errs)
					for err := range errs {
						b.Fatal(err)
					}
					raw, creates = raw+mid.Sub(start), creates+time.Since(mid)
				}
				b.ReportMetric(float64(round*b.N)/raw.Seconds(), "raw/s")
				b.ReportMetric(float64(round*b.N)/creates.Seconds(), "creates/s")
				b.ReportMetric(raw.Seconds()/creates.Seconds(), "creates/raw")
				b.ReportMetric(quantileMs(rawLat, 50), "raw-p50-ms")
				b.ReportMetric(quantileMs(slices.Concat(createLat...), 50), "create-p50-ms")
			})
		}
	}
}
