package tests

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
)

// BenchmarkCluster measures, in one run, memledger on a three-server NATS cluster with one
// stream of three replicas (README: Several instances on a NATS cluster): write throughput
// and p99 with one, two and three instances taking the writes, read throughput of one
// instance, the time from the stream leader's death to the next acknowledged write, and the
// catch-up rate of a fresh instance.
//
//	go test ./tests -run '^$' -bench BenchmarkCluster -benchtime 1x
func BenchmarkCluster(b *testing.B) {
	const (
		clients = 8    // concurrent HTTP clients, spread over the instances taking the writes
		writes  = 1500 // creates per measurement
		reads   = 6000 // reads of one instance
	)
	for b.Loop() {
		c := startLedgerCluster(b, 3, nil)
		for n := 1; n <= 3; n++ {
			rate, p99 := benchWrites(b, c.nodes[:n], clients, writes, fmt.Sprintf("bench-%d", n))
			b.ReportMetric(rate, fmt.Sprintf("writes/s-%d-instances", n))
			b.ReportMetric(float64(p99.Microseconds())/1000, fmt.Sprintf("p99-ms-%d-instances", n))
		}
		last := c.nodes[0].lastSeq()
		for _, l := range c.nodes {
			caughtUp(b, l, last)
		}
		ids := c.nodes[0].listAll(nil)
		b.ReportMetric(benchReads(b, c.nodes[1], ids, clients, reads), "reads/s-one-instance")

		failover := benchLeaderKill(b, c, clients)
		b.ReportMetric(float64(failover.Microseconds())/1000, "ms-leader-kill-to-next-ack")

		// A fresh instance: an empty data directory on the same log.
		last = c.nodes[0].lastSeq()
		dir := joinDir(b, c.nodes[0])
		began := time.Now()
		fresh := startLedger(b, withConfig(func(cfg *app.Config) { cfg.NatsURL, cfg.Replicas, cfg.Data = c.nats.URLs(), clusterReplicas, dir }))
		caughtUp(b, fresh, last)
		took := time.Since(began)
		b.ReportMetric(float64(last)/took.Seconds(), "events/s-catch-up")
		b.ReportMetric(float64(last), "events-caught-up")
	}
}

// benchClient sends the benchmark's requests with the admin token and without the OpenAPI
// check of every request and answer, which the tests' default transport makes.
var benchClient = &http.Client{Transport: tokenTransport{next: baseTransport}}

// benchWrites sends n creates from clients concurrent clients spread over nodes, and
// returns the writes per second and the 99th percentile of their latency.
func benchWrites(b *testing.B, nodes []*ledger, clients, n int, prefix string) (float64, time.Duration) {
	b.Helper()
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range clients {
		l := nodes[i%len(nodes)]
		wg.Go(func() {
			for {
				k := next.Add(1)
				if k > int64(n) {
					return
				}
				body := map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("%s write %d: %s", prefix, k, benchContent)}
				start := time.Now()
				res, err := sendTo(benchClient, l.URL, "POST", "/memory", body, "Idempotency-Key", fmt.Sprintf("%s-%d", prefix, k))
				if err != nil || res.Status != http.StatusCreated {
					b.Errorf("write %d on %s: %v %d %s", k, l.URL, err, res.Status, res.Body)
					return
				}
				lat[i] = append(lat[i], time.Since(start))
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	all := slices.Concat(lat...)
	slices.Sort(all)
	require.Len(b, all, n)
	return float64(n) / took.Seconds(), all[len(all)*99/100]
}

// benchReads reads memories of ids from one instance, from clients concurrent clients, and
// returns the reads per second.
func benchReads(b *testing.B, l *ledger, ids []string, clients, n int) float64 {
	b.Helper()
	require.NotEmpty(b, ids)
	var next atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				k := next.Add(1)
				if k > int64(n) {
					return
				}
				res, err := sendTo(benchClient, l.URL, "GET", "/memory/"+ids[int(k)%len(ids)], nil)
				if err != nil || res.Status != http.StatusOK {
					b.Errorf("read on %s: %v %d", l.URL, err, res.Status)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(began).Seconds()
}

// benchLeaderKill kills the stream's leader under writes to every instance and returns the
// time from its death to the acknowledgement of the first write sent after it.
func benchLeaderKill(b *testing.B, c *ledgerCluster, clients int) time.Duration {
	b.Helper()
	w := newClusterWriter()
	stop := make(chan struct{})
	wait := w.run(clients, "failover", stop, func(i, _ int) *ledger { return c.nodes[i%len(c.nodes)] })
	require.Eventually(b, func() bool { return w.count(time.Time{}) >= 50 }, time.Minute, 10*time.Millisecond)
	leader := c.streamLeader()
	killed := time.Now()
	c.nats.Kill(leader)
	require.Eventually(b, func() bool { return w.count(killed) >= 1 }, 2*time.Minute, time.Millisecond)
	close(stop)
	wait()
	require.Empty(b, w.errs)
	acked, _ := w.writes()
	var first time.Time
	for _, a := range acked {
		if !a.Began.Before(killed) && (first.IsZero() || a.At.Before(first)) {
			first = a.At
		}
	}
	c.nats.Restart(leader)
	return first.Sub(killed)
}
