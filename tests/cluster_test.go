package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore/eventstoretest"
)

// clusterReplicas is the number of NATS servers of the test clusters, and the replicas of the
// stream the memledger instances share on them.
const clusterReplicas = 3

// ledgerCluster is a JetStream cluster of three NATS servers and memledger instances that
// share one stream of three replicas on it, each with its own data directory.
type ledgerCluster struct {
	t     testing.TB
	nats  *eventstoretest.Cluster
	nodes []*ledger
}

// startLedgerCluster starts three NATS servers in a cluster and n memledger instances on
// them; opt, when not nil, gives instance i options of its own. The instances take the
// first one's admin token (tokens live in the shared log).
func startLedgerCluster(t testing.TB, n int, opt func(i int) func(*ledger)) *ledgerCluster {
	t.Helper()
	c := &ledgerCluster{t: t, nats: eventstoretest.StartCluster(t, clusterReplicas)}
	for i := range n {
		opts := []func(*ledger){withConfig(func(cfg *app.Config) { cfg.NatsURL, cfg.Replicas = c.nats.URLs(), clusterReplicas })}
		if i > 0 {
			dir := joinDir(t, c.nodes[0])
			opts = append(opts, withConfig(func(cfg *app.Config) { cfg.Data = dir }))
		}
		if opt != nil {
			opts = append(opts, opt(i))
		}
		c.nodes = append(c.nodes, startLedger(t, opts...))
	}
	return c
}

// streamLeader is the name of the server that leads the stream, asked of a running instance.
func (c *ledgerCluster) streamLeader() string {
	c.t.Helper()
	var leader string
	require.Eventually(c.t, func() bool {
		for _, l := range c.nodes {
			if l.Main == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(c.t.Context(), 2*time.Second)
			st, err := l.Main.Store.JetStream().Stream(ctx, l.Main.Store.Stream)
			if err == nil {
				info, err := st.Info(ctx)
				if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
					leader = info.Cluster.Leader
				}
			}
			cancel()
			if leader != "" {
				return true
			}
		}
		return false
	}, 60*time.Second, 50*time.Millisecond, "the stream has no leader")
	return leader
}

// crash stops instance i as a process that dies would (see crashLedger).
func (c *ledgerCluster) crash(i int) { crashLedger(c.nodes[i]) }

// crashLedger stops l as a process that dies would: its connection to NATS goes first,
// without releasing anything it holds or acknowledging anything it pulled, then the rest.
func crashLedger(l *ledger) {
	l.Main.Store.Conn().Close()
	// What it was doing fails on the closed connection; that is the point.
	l.closeMain()
}

// caughtUp waits until instance l's projections have applied the log up to seq.
func caughtUp(t testing.TB, l *ledger, seq uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		res, err := l.send("GET", "/health", nil)
		if err != nil || res.Status != http.StatusOK {
			return false
		}
		var h healthInfo
		return json.Unmarshal(res.Body, &h) == nil && h.Projections["memories"] >= seq
	}, 90*time.Second, 50*time.Millisecond, "instance %s does not reach position %d", l.URL, seq)
}

// clusterWrite is one create, acknowledged with its memory's id and log position.
type clusterWrite struct {
	ID  string
	Seq uint64
	// Tries counts the requests sent with its key; Replayed says the answer was that of an
	// earlier try (the first was recorded, but its answer never came).
	Tries    int
	Replayed bool
	// Began is when the request that got the answer was sent; At when the answer came.
	Began, At time.Time
}

// clusterWriter creates memories through the instances of a cluster, each create with an
// idempotency key of its own; a create that fails or gets no answer in time is sent again
// with the same key, on the instance next chosen.
type clusterWriter struct {
	client *http.Client
	mu     sync.Mutex
	acked  map[string]clusterWrite
	errs   []string
}

func newClusterWriter() *clusterWriter {
	return &clusterWriter{client: &http.Client{Timeout: 5 * time.Second}, acked: map[string]clusterWrite{}}
}

// write creates the memory of key through target(try), trying again until it is acknowledged
// or two minutes have passed (then the failure is kept, for the test to report): a loaded
// machine running three servers' elections and three instances' catch-up can take a while.
func (w *clusterWriter) write(key string, target func(try int) *ledger) {
	body := map[string]any{"memory_type": "knowledge", "content": "written in the cluster under " + key}
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for try := 1; time.Now().Before(deadline); try++ {
		l := target(try)
		began := time.Now()
		res, err := sendTo(w.client, l.URL, "POST", "/memory", body, "Idempotency-Key", key)
		switch {
		case err != nil:
			last = err.Error()
		case res.Status == http.StatusCreated:
			var m domain.Memory
			if err := json.Unmarshal(res.Body, &m); err != nil || m.ID == "" {
				last = fmt.Sprintf("201 without a memory: %s", res.Body)
				break
			}
			w.mu.Lock()
			w.acked[key] = clusterWrite{ID: m.ID, Seq: m.Seq, Tries: try, Replayed: res.Header.Get("Idempotent-Replayed") == "true",
				Began: began, At: time.Now()}
			w.mu.Unlock()
			return
		case res.Status >= 500 || res.Status == http.StatusTooManyRequests:
			// The log or the instance is failing over: the write is sent again, with its key.
			last = fmt.Sprintf("%d: %s", res.Status, res.Body)
		default:
			w.fail(fmt.Sprintf("%s: %d: %s", key, res.Status, res.Body))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.fail(fmt.Sprintf("%s: not acknowledged within two minutes: %s", key, last))
}

func (w *clusterWriter) fail(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, msg)
}

// count is the number of acknowledged writes whose request was sent after since.
func (w *clusterWriter) count(since time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.acked {
		if !a.Began.Before(since) {
			n++
		}
	}
	return n
}

// writes are the acknowledged writes, by key, and the highest log position among them.
func (w *clusterWriter) writes() (map[string]clusterWrite, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]clusterWrite, len(w.acked))
	var top uint64
	for k, a := range w.acked {
		out[k] = a
		top = max(top, a.Seq)
	}
	return out, top
}

// run starts n writers, writer i writing key prefix-i-0, prefix-i-1, ... through target(i,
// try) until stop is closed; the returned function waits for them.
func (w *clusterWriter) run(n int, prefix string, stop <-chan struct{}, target func(i, try int) *ledger) func() {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				w.write(fmt.Sprintf("%s-%d-%d", prefix, i, k), func(try int) *ledger { return target(i, try) })
			}
		})
	}
	return wg.Wait
}

// requireAllServed requires every instance given to serve exactly the acknowledged memories,
// once each: nothing acknowledged is lost, and no retry wrote a second memory.
func requireAllServed(t *testing.T, acked map[string]clusterWrite, top uint64, nodes ...*ledger) {
	t.Helper()
	var want []string
	for _, a := range acked {
		want = append(want, a.ID)
	}
	sort.Strings(want)
	for _, l := range nodes {
		caughtUp(t, l, top)
		got := l.listAll(url.Values{"limit": {"500"}, "min_seq": {strconv.FormatUint(top, 10)}})
		sort.Strings(got)
		require.Equal(t, want, got, "instance %s serves every acknowledged memory once, and nothing else", l.URL)
	}
}

// The stream's leader dies under writes to all three instances: no acknowledged write is lost,
// the retries (with their keys) write nothing twice, and writes resume.
func TestClusterLeaderKilledUnderWrites(t *testing.T) {
	c := startLedgerCluster(t, 3, nil)
	w := newClusterWriter()
	stop := make(chan struct{})
	// Two writers per instance, each retrying on its own instance.
	wait := w.run(6, "leader", stop, func(i, _ int) *ledger { return c.nodes[i%3] })
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			wait()
		}
	}()
	require.Eventually(t, func() bool { return w.count(time.Time{}) >= 30 }, 60*time.Second, 10*time.Millisecond, "writes before the kill")

	leader := c.streamLeader()
	killed := time.Now()
	c.nats.Kill(leader)
	t.Logf("stream leader %s killed after %d acknowledged writes", leader, w.count(time.Time{}))
	require.Eventually(t, func() bool { return w.count(killed) >= 30 }, 90*time.Second, 10*time.Millisecond, "writes resume after the leader's death")
	close(stop)
	wait()
	stopped = true
	require.Empty(t, w.errs)

	acked, top := w.writes()
	var resumed time.Time
	retried := 0
	for _, a := range acked {
		if !a.Began.Before(killed) && (resumed.IsZero() || a.At.Before(resumed)) {
			resumed = a.At
		}
		if a.Tries > 1 {
			retried++
		}
	}
	t.Logf("%d writes acknowledged (%d after a retry), up to position %d; the first write sent after the kill was acknowledged %v after it",
		len(acked), retried, top, resumed.Sub(killed).Round(time.Millisecond))
	requireAllServed(t, acked, top, c.nodes...)

	// The server comes back, catches up, and the stream goes on with its three replicas.
	c.nats.Restart(leader)
	m := c.nodes[0].mem(map[string]any{"memory_type": "knowledge", "content": "after the restart of " + leader})
	acked["after"] = clusterWrite{ID: m.ID, Seq: m.Seq}
	requireAllServed(t, acked, m.Seq, c.nodes...)
}

// An instance dies under writes: creates it recorded but never answered are sent again, with
// their keys, to another instance, which answers them once; the dead instance, started
// again, catches up, and verify finds every instance's projections equal to the log's.
func TestClusterInstanceKilledMidWrites(t *testing.T) {
	var hold atomic.Bool
	released := make(chan struct{})
	c := startLedgerCluster(t, 3, func(i int) func(*ledger) {
		return func(l *ledger) {
			if i != 0 {
				return
			}
			// While held, instance 0 appends writes to the log but cannot apply them, so it
			// never answers them: it dies with them recorded and unanswered.
			l.projectionsHook = func([]domain.Event) error {
				if hold.Load() {
					<-released
				}
				return nil
			}
		}
	})
	w := newClusterWriter()
	w.client.Timeout = 3 * time.Second
	stop := make(chan struct{})
	// Four clients of instance 0; after a failure each goes on with instance 1 or 2.
	var moved [4]atomic.Int32
	wait := w.run(4, "instance", stop, func(i, try int) *ledger {
		if try > 1 && moved[i].Load() == 0 {
			moved[i].Store(int32(1 + i%2))
		}
		return c.nodes[moved[i].Load()]
	})
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			wait()
		}
	}()
	require.Eventually(t, func() bool { return w.count(time.Time{}) >= 20 }, 60*time.Second, 10*time.Millisecond, "writes before the crash")

	hold.Store(true)
	require.Eventually(t, func() bool {
		for i := range moved {
			if moved[i].Load() == 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 10*time.Millisecond, "the clients of the held instance give up on it")
	crashed := time.Now()
	close(released)
	c.crash(0)
	require.Eventually(t, func() bool { return w.count(crashed) >= 20 }, 60*time.Second, 10*time.Millisecond, "writes go on on the others")
	close(stop)
	wait()
	stopped = true
	require.Empty(t, w.errs)

	acked, top := w.writes()
	replayed := 0
	for _, a := range acked {
		if a.Replayed {
			replayed++
		}
	}
	// Each of the four clients had a create under way on instance 0 when it was held: each
	// was appended there and answered by another instance as the replay it is.
	require.GreaterOrEqual(t, replayed, 1, "no retry was answered as a replay of a write the dead instance recorded")
	t.Logf("%d writes acknowledged, %d of them answered on a retry as the replay of a write the dead instance recorded", len(acked), replayed)
	requireAllServed(t, acked, top, c.nodes[1], c.nodes[2])

	// Started again on its data directory, the dead instance catches up.
	c.nodes[0].start()
	requireAllServed(t, acked, top, c.nodes...)

	// verify, on each stopped instance, finds its projections equal to a build from the log.
	last := c.nodes[1].lastSeq()
	for _, l := range c.nodes {
		caughtUp(t, l, last)
		l.stop()
		code, out, errOut := runApp(t, "verify", "--data", l.cfg.Data, "--nats-url", c.nats.URLs(), "--replicas", strconv.Itoa(clusterReplicas))
		require.Equal(t, 0, code, "verify %s: stdout: %s\nstderr: %s", l.cfg.Data, out, errOut)
		require.Contains(t, out, "ok")
	}
}

// The nightly pipeline runs once per night in the cluster while its holder dies and comes
// back: the run under way stops when its lease is lost, another instance runs the night once
// the lease has expired, and the dead instance, started again, finds the night done.
func TestClusterNightlyOnceWhileInstancesDie(t *testing.T) {
	const ttl = 6 * time.Second
	c := startLedgerCluster(t, 3, nil)
	for _, l := range c.nodes {
		// Before the first lease is taken, which creates the bucket with it.
		l.Main.Store.LeaseTTL = ttl
	}
	// Candidates to promote, written on instance 1.
	var candidates []string
	for range 3 {
		m := c.nodes[1].mem(map[string]any{"memory_type": "knowledge", "content": "reinforced " + time.Now().String(), "status": "candidate"})
		for range 3 {
			c.nodes[1].act("POST", "/memory/"+m.ID+"/reinforce", map[string]any{"delta": 0.3})
		}
		candidates = append(candidates, m.ID)
	}

	// Each step counts its runs in the cluster and how many run at once; the first run of the
	// first step holds on until its instance dies.
	var mu sync.Mutex
	runs := map[string]int{}
	var running, most atomic.Int32
	holder := make(chan int, 1)
	var first atomic.Bool
	wrap := func(i int) {
		for s, step := range c.nodes[i].Main.Nightly.Steps {
			inner := step.Run
			c.nodes[i].Main.Nightly.Steps[s].Run = func(ctx context.Context, night string) (map[string]any, error) {
				n := running.Add(1)
				defer running.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				mu.Lock()
				runs[step.Name]++
				mu.Unlock()
				if s == 0 && first.CompareAndSwap(false, true) {
					holder <- i
					<-ctx.Done()
					return nil, ctx.Err()
				}
				time.Sleep(50 * time.Millisecond)
				return inner(ctx, night)
			}
		}
	}
	for i := range c.nodes {
		wrap(i)
	}

	const night = "2026-12-01"
	var wg sync.WaitGroup
	results := make([]*domain.NightlyRan, len(c.nodes))
	for i, l := range c.nodes {
		wg.Go(func() {
			res, err := sendTo(&http.Client{Timeout: 2 * time.Minute}, l.URL, "POST", "/admin/nightly/run", map[string]any{"night": night})
			if err == nil && res.Status == http.StatusOK {
				var r domain.NightlyRan
				if json.Unmarshal(res.Body, &r) == nil {
					results[i] = &r
				}
			}
		})
	}
	var dead int
	select {
	case dead = <-holder:
	case <-time.After(60 * time.Second):
		t.Fatal("no instance began the night")
	}
	c.crash(dead)
	wg.Wait()
	require.Nil(t, results[dead], "the dead instance answered its run")

	survivor := c.nodes[(dead+1)%3]
	steps := survivor.Main.Nightly.StepNames()
	n := len(steps)
	require.Equal(t, int32(1), most.Load(), "steps of two instances ran at once")
	require.Equal(t, 2, runs[steps[0]], "the step the dead instance was running ran again, on another")
	for _, s := range steps[1:] {
		require.Equal(t, 1, runs[s], "step %s ran once in the cluster", s)
	}
	var ok, skipped int
	for i, r := range results {
		if i == dead {
			continue
		}
		require.NotNil(t, r, "instance %d answered its run", i)
		for _, s := range r.Steps {
			switch s.Status {
			case domain.StepOK:
				ok++
			case domain.StepSkipped:
				skipped++
			}
		}
	}
	require.Equal(t, n, ok, "one survivor ran every step")
	require.Equal(t, n, skipped, "the other found them done")

	// Every candidate was promoted, once.
	for _, id := range candidates {
		promoted := 0
		for _, e := range survivor.auditOf(id) {
			if e.Action == domain.ActionPromoted {
				promoted++
			}
		}
		require.Equal(t, 1, promoted, "memory %s promoted once", id)
	}

	// The dead instance comes back: the night is done, and the next runs once.
	c.nodes[dead].start()
	c.nodes[dead].Main.Store.LeaseTTL = ttl
	wrap(dead)
	var again domain.NightlyRan
	c.nodes[dead].expect(http.StatusOK, "POST", "/admin/nightly/run", map[string]any{"night": night}).Decode(t, &again)
	for _, s := range again.Steps {
		require.Equal(t, domain.StepSkipped, s.Status, "step %s of a night done elsewhere", s.Name)
	}
	for i, l := range c.nodes {
		wg.Go(func() {
			res, err := l.send("POST", "/admin/nightly/run", map[string]any{"night": "2026-12-02"})
			if err != nil || res.Status != http.StatusOK {
				t.Errorf("instance %d: the next night: %v %d %s", i, err, res.Status, res.Body)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), most.Load(), "steps of two instances ran at once")
	require.Equal(t, 3, runs[steps[0]])
	for _, s := range steps[1:] {
		require.Equal(t, 2, runs[s], "step %s ran once more in the cluster", s)
	}
}
