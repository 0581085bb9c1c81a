package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/handlers/subscriptions"
)

// buildNATSServer builds nats-server, the module this one depends on, into a directory of the
// test and returns its path (as cmd/memledger/cluster.sh does).
func buildNATSServer(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err, "go env GOMOD")
	bin := filepath.Join(t.TempDir(), "nats-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "go build nats-server:\n%s", out)
	return bin
}

// natsProc is one nats-server process of a JetStream cluster on loopback.
type natsProc struct {
	name, url, cluster, dir, log string
	cmd                          *exec.Cmd
	done                         chan error
}

// natsProcs is a JetStream cluster of nats-server processes, which a test can kill with SIGKILL.
type natsProcs struct {
	t     *testing.T
	bin   string
	procs []*natsProc
}

// startNATSProcs starts n nats-server processes in a JetStream cluster and waits until each
// answers JetStream requests (the cluster has a meta leader).
func startNATSProcs(t *testing.T, bin string, n int) *natsProcs {
	t.Helper()
	c := &natsProcs{t: t, bin: bin}
	for i := range n {
		c.procs = append(c.procs, &natsProc{name: fmt.Sprintf("n%d", i+1), url: "nats://" + freeAddr(t),
			cluster: freeAddr(t), dir: t.TempDir(), log: filepath.Join(t.TempDir(), "nats.log")})
	}
	for _, p := range c.procs {
		c.start(p)
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			if p.cmd != nil {
				p.cmd.Process.Kill()
				<-p.done
			}
		}
	})
	c.waitReady()
	return c
}

// URLs are the servers' client URLs joined by commas, memledger's --nats-url.
func (c *natsProcs) URLs() string {
	urls := make([]string, len(c.procs))
	for i, p := range c.procs {
		urls[i] = p.url
	}
	return strings.Join(urls, ",")
}

func (c *natsProcs) start(p *natsProc) {
	c.t.Helper()
	var routes []string
	for _, q := range c.procs {
		routes = append(routes, "nats-route://"+q.cluster)
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(p.url, "nats://"))
	require.NoError(c.t, err)
	log, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(c.t, err)
	defer log.Close()
	p.cmd = exec.Command(c.bin, "--name", p.name, "--addr", host, "--port", port, "--jetstream", "--store_dir", p.dir,
		"--cluster_name", "memledger-proc", "--cluster", "nats://"+p.cluster, "--routes", strings.Join(routes, ","))
	p.cmd.Stdout, p.cmd.Stderr = log, log
	require.NoError(c.t, p.cmd.Start())
	p.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(p.cmd, p.done)
}

// waitReady waits until every running server answers a JetStream request.
func (c *natsProcs) waitReady() {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		for _, p := range c.procs {
			if p.cmd == nil {
				continue
			}
			nc, err := nats.Connect(p.url, nats.Timeout(time.Second))
			if err != nil {
				return false
			}
			js, err := jetstream.New(nc)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err = js.AccountInfo(ctx)
				cancel()
			}
			nc.Close()
			if err != nil {
				return false
			}
		}
		return true
	}, 60*time.Second, 100*time.Millisecond, "the nats-server cluster is not ready")
}

// kill kills the server named name with SIGKILL: no leadership handed over, nothing flushed.
func (c *natsProcs) kill(name string) {
	c.t.Helper()
	for _, p := range c.procs {
		if p.name == name {
			require.NoError(c.t, p.cmd.Process.Signal(syscall.SIGKILL))
			<-p.done
			p.cmd = nil
			return
		}
	}
	require.FailNow(c.t, "no server named "+name)
}

// restart starts the server named name again on its ports and store, and waits until the
// cluster answers.
func (c *natsProcs) restart(name string) {
	c.t.Helper()
	for _, p := range c.procs {
		if p.name == name {
			c.start(p)
			c.waitReady()
			return
		}
	}
	require.FailNow(c.t, "no server named "+name)
}

// streamLeader is the name of the server that leads stream.
func (c *natsProcs) streamLeader(stream string) string {
	c.t.Helper()
	nc, err := nats.Connect(c.URLs())
	require.NoError(c.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(c.t, err)
	return waitLeader(c.t, "the stream", func(ctx context.Context) (*jetstream.ClusterInfo, error) {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return nil, err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return nil, err
		}
		return info.Cluster, nil
	})
}

// waitLeader waits until cluster, asked again every 50 ms (each time within 2 s), names a
// leader of what it describes, and returns its name.
func waitLeader(t *testing.T, what string, cluster func(context.Context) (*jetstream.ClusterInfo, error)) string {
	t.Helper()
	var leader string
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		info, err := cluster(ctx)
		if err != nil || info == nil {
			return false
		}
		leader = info.Leader
		return leader != ""
	}, 60*time.Second, 50*time.Millisecond, "%s has no leader", what)
	return leader
}

// processTestsOff says whether the tests that run nats-server processes are off: they run with
// MEMLEDGER_PROCESS_TESTS=1.
func processTestsOff() bool { return os.Getenv("MEMLEDGER_PROCESS_TESTS") == "" }

// The failures as a crash makes them, with processes: three nats-server processes in a
// cluster and three memledger serve processes on one R3 stream. The stream leader's server is
// killed with SIGKILL under writes to all three instances (no leadership handed over: the
// others elect a leader once their election timeout passes); no acknowledged write is lost,
// retries write nothing twice, and the time from the kill to the first acknowledged write sent
// after it is logged. Then a memledger instance is killed with SIGKILL under writes: its
// clients send their writes again, with their idempotency keys, to the other instances, and
// each write is answered exactly once (the served memories are exactly the acknowledged
// ones); the instance started again catches up, and verify is clean on each. It builds both
// binaries, so it is skipped under -short.
func TestClusterProcessesKilled(t *testing.T) {
	if testing.Short() || processTestsOff() {
		// Run with MEMLEDGER_PROCESS_TESTS=1: out of the default run for its time (it builds
		// two binaries and runs five processes, a minute or more on a loaded machine).
		t.Skip("builds nats-server and memledger and runs them as processes: set MEMLEDGER_PROCESS_TESTS=1")
	}
	natsBin, bin := buildNATSServer(t), buildBinary(t)
	c := startNATSProcs(t, natsBin, clusterReplicas)
	flags := []string{"--nats-url", c.URLs(), "--replicas", strconv.Itoa(clusterReplicas)}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	procs := []*proc{startProc(t, bin, dirs[0], flags...)}
	for _, dir := range dirs[1:] {
		// The tokens are in the shared log, their digests keyed with the first one's key file.
		require.NoError(t, os.WriteFile(filepath.Join(dir, "admin.token"), []byte(adminToken(t, dirs[0])+"\n"), 0o600))
		key, err := os.ReadFile(filepath.Join(dirs[0], subscriptions.KeyFileName))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, subscriptions.KeyFileName), key, 0o600))
		procs = append(procs, startProc(t, bin, dir, flags...))
	}
	nodes := make([]*ledger, len(procs))
	for i, p := range procs {
		nodes[i] = &ledger{t: t, URL: p.URL}
	}

	// The stream leader's server, killed.
	w := newClusterWriter()
	stop := make(chan struct{})
	wait := w.run(6, "leader", stop, func(i, _ int) *ledger { return nodes[i%3] })
	require.Eventually(t, func() bool { return w.count(time.Time{}) >= 30 }, 60*time.Second, 10*time.Millisecond, "writes before the kill")
	leader := c.streamLeader("LEDGER")
	killed := time.Now()
	c.kill(leader)
	require.Eventually(t, func() bool { return w.count(killed) >= 30 }, 150*time.Second, 10*time.Millisecond, "writes resume after the leader's death")
	close(stop)
	wait()
	if len(w.errs) > 0 {
		// SIGQUIT makes each instance write its goroutines to its log before it exits: where a
		// write that is not answered waits.
		for _, p := range procs {
			p.cmd.Process.Signal(syscall.SIGQUIT)
		}
		for i, p := range procs {
			select {
			case <-p.done:
				p.exited = true
			case <-time.After(10 * time.Second):
			}
			t.Logf("instance %d (%s) log:\n%s", i, p.URL, p.logs())
		}
	}
	require.Empty(t, w.errs)
	acked, top := w.writes()
	// The first write sent after the kill is acknowledged once the others have elected a
	// leader: nats-server's election timeout is random, between 4 and 9 s.
	var resumed time.Time
	for _, a := range acked {
		if !a.Began.Before(killed) && (resumed.IsZero() || a.At.Before(resumed)) {
			resumed = a.At
		}
	}
	t.Logf("stream leader %s killed with SIGKILL: %d writes acknowledged up to position %d; the first write sent after the kill was acknowledged %v after it",
		leader, len(acked), top, resumed.Sub(killed).Round(time.Millisecond))
	requireAllServed(t, acked, top, nodes...)
	c.restart(leader)

	// A memledger instance, killed: four clients of instance 0, each going on with instance 1
	// or 2 once a request to it fails.
	w2 := newClusterWriter()
	w2.client.Timeout = 3 * time.Second
	stop = make(chan struct{})
	moved := make([]int, 4)
	var movedMu sync.Mutex
	wait = w2.run(4, "instance", stop, func(i, try int) *ledger {
		movedMu.Lock()
		defer movedMu.Unlock()
		if try > 1 && moved[i] == 0 {
			moved[i] = 1 + i%2
		}
		return nodes[moved[i]]
	})
	require.Eventually(t, func() bool { return w2.count(time.Time{}) >= 20 }, 60*time.Second, 10*time.Millisecond, "writes before the kill")
	require.NoError(t, procs[0].cmd.Process.Signal(syscall.SIGKILL))
	procs[0].wait(30 * time.Second)
	crashed := time.Now()
	require.Eventually(t, func() bool { return w2.count(crashed) >= 20 }, 60*time.Second, 10*time.Millisecond, "writes go on on the others")
	close(stop)
	wait()
	require.Empty(t, w2.errs)
	acked2, top2 := w2.writes()
	retried, replayed := 0, 0
	for _, a := range acked2 {
		if a.Tries > 1 {
			retried++
		}
		if a.Replayed {
			replayed++
		}
	}
	t.Logf("memledger instance killed with SIGKILL: %d writes acknowledged, %d after a retry on another instance, %d of them answered as the replay of a write the dead instance had recorded",
		len(acked2), retried, replayed)
	for k, a := range acked {
		acked2[k] = a
	}
	top = max(top, top2)
	requireAllServed(t, acked2, top, nodes[1], nodes[2])

	// Started again on its data directory, the dead instance catches up; verify is clean on each.
	procs[0] = startProc(t, bin, dirs[0], flags...)
	nodes[0] = &ledger{t: t, URL: procs[0].URL}
	requireAllServed(t, acked2, top, nodes...)
	last := nodes[1].lastSeq()
	for i, p := range procs {
		caughtUp(t, nodes[i], last)
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, p.wait(30*time.Second), "serve exit\n%s", p.logs())
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, bin, append([]string{"verify", "--data", dirs[i], "--log-format", "text"}, flags...)...).CombinedOutput()
		cancel()
		require.NoError(t, err, "verify %s:\n%s", dirs[i], out)
		require.Contains(t, string(out), "ok")
	}
}
