package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// views is every answer a client can read about a set of memories, raw.
type views map[string]string

// readViews reads GET /memory/{id} and /memory/{id}/audit for each id, the recent audit and
// the whole list.
func (l *ledger) readViews(ids []string) views {
	l.t.Helper()
	v := views{}
	for _, id := range ids {
		for _, path := range []string{"/memory/" + id, "/memory/" + id + "/audit"} {
			v[path] = string(l.expect(http.StatusOK, "GET", path, nil).Body)
		}
	}
	for _, path := range []string{"/admin/audit/recent?limit=500", "/memory?limit=500"} {
		v[path] = string(l.expect(http.StatusOK, "GET", path, nil).Body)
	}
	return v
}

// fileCheckpoints reads the checkpoints of the projection file in dir with bbolt directly;
// the ledger must be stopped.
func fileCheckpoints(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "projections.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	out := map[string]uint64{}
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("checkpoints"))
		if b == nil {
			return errors.New("no checkpoints bucket")
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		})
	}))
	return out
}

// writeHistory makes a small mixed history and returns the ids of the memories.
func writeHistory(l *ledger, n int) []string {
	l.t.Helper()
	var out []string
	for i := range n {
		status := "active"
		if i%2 == 0 {
			status = "candidate"
		}
		m := l.mem(map[string]any{"memory_type": domain.MemoryTypes[i%len(domain.MemoryTypes)], "content": fmt.Sprintf("fact %d", i),
			"status": status, "project": fmt.Sprintf("p-%d", i%3), "domain_tags": []string{"t", fmt.Sprintf("t%d", i)}})
		out = append(out, m.ID)
		cand := m.Status == domain.StatusCandidate
		switch {
		case i%5 == 0 && cand:
			l.act("POST", "/memory/"+m.ID+"/promote", nil, "X-Actor", "human-triage")
		case i%5 == 0:
			l.act("POST", "/memory/"+m.ID+"/supersede", map[string]any{"superseded_by": out[0]})
		case i%5 == 1:
			l.act("PUT", "/memory/"+m.ID, map[string]any{"content": fmt.Sprintf("fact %d, revised", i)})
		case i%5 == 2:
			l.act("POST", "/memory/"+m.ID+"/reinforce", nil)
		case i%5 == 3 && cand:
			l.act("POST", "/memory/"+m.ID+"/reject", map[string]any{"note": "wrong"})
		case i%5 == 3:
			l.act("POST", "/memory/"+m.ID+"/invalidate", map[string]any{"reason": "wrong"})
		}
	}
	return out
}

func TestRestartKeepsEverything(t *testing.T) {
	l := startLedger(t)
	memIDs := writeHistory(l, 20)
	before := l.readViews(memIDs)
	h := l.health()
	require.Equal(t, "ok", h.Status)
	require.Equal(t, h.LastSeq, h.Projections["memories"], "caught up before the stop")

	l.stop()
	cps := fileCheckpoints(t, l.cfg.Data)
	require.Equal(t, h.LastSeq, cps["memories"], "the checkpoint on disk is the last event")
	l.start()

	// The runner starts from the checkpoint on disk, not from the start of the log.
	require.GreaterOrEqual(t, l.Main.Runner.Applied(), cps["memories"])
	h2 := l.health()
	require.Equal(t, h.LastSeq, h2.LastSeq, "the log did not move")
	require.Equal(t, h.Projections, h2.Projections, "the checkpoint did not move: nothing was replayed")
	after := l.readViews(memIDs)
	require.Equal(t, before, after, "every memory and audit entry is there, byte for byte")
	for _, id := range memIDs {
		require.NotEmpty(t, l.auditOf(id))
	}

	// New writes continue the log.
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "after the restart"})
	require.Equal(t, h.LastSeq+1, m.Seq)
	m = l.act("POST", "/memory/"+memIDs[1]+"/reinforce", nil)
	require.Equal(t, h.LastSeq+2, m.Seq)
	h3 := l.health()
	require.Equal(t, h.LastSeq+2, h3.LastSeq)
	require.Equal(t, h.LastSeq+2, h3.Projections["memories"])

	// And survive a second restart.
	l.restart()
	require.Equal(t, h3, l.health())
	require.Equal(t, m, l.get(memIDs[1]))
}

// ---------------------------------------------------------------------------------------------
// The crash test: the real binary, killed with SIGKILL in the middle of a stream of writes.
// ---------------------------------------------------------------------------------------------

// buildBinary builds cmd/memledger into a directory of the test and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err, "go env GOMOD")
	gomod := strings.TrimSpace(string(out))
	require.NotEmpty(t, gomod, "not in a module")
	bin := filepath.Join(t.TempDir(), "memledger")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/memledger")
	cmd.Dir = filepath.Dir(gomod)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	return bin
}

// proc is a memledger serve subprocess.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	URL  string
	log  *os.File
	done chan error
	// exited is set once the process's exit has been received from done.
	exited bool
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startProc starts `memledger serve` on dir, with the flags args besides, and waits until
// /health answers.
func startProc(t *testing.T, bin, dir string, args ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	logFile, err := os.CreateTemp(t.TempDir(), "serve-*.log")
	require.NoError(t, err)
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr, "--data", dir, "--log-format", "text"}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	p := &proc{t: t, cmd: cmd, URL: "http://" + addr, log: logFile, done: make(chan error, 1)}
	registerLedger(p.URL, dir)
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if !p.exited {
			p.cmd.Process.Kill()
			<-p.done
		}
		logFile.Close()
	})
	client := &http.Client{Timeout: time.Second}
	require.Eventually(t, func() bool {
		select {
		case err := <-p.done:
			p.done <- err
			return true // reported below
		default:
		}
		res, err := sendTo(client, p.URL, "GET", "/health", nil)
		return err == nil && res.Status == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "memledger serve did not answer /health")
	select {
	case err := <-p.done:
		t.Fatalf("memledger serve exited: %v\n%s", err, p.logs())
	default:
	}
	return p
}

func (p *proc) logs() string {
	data, _ := os.ReadFile(p.log.Name())
	return string(data)
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		p.exited = true
		p.t.Fatalf("memledger serve did not exit within %s\n%s", timeout, p.logs())
	}
	p.exited = true
	return p.cmd.ProcessState.ExitCode()
}

// acked is a write the ledger acknowledged with a 2xx answer.
type acked struct {
	id   string
	seq  uint64
	body string
}

// writeUntilDead creates memories sequentially (with promotes and updates in between) until a
// request fails, and returns every acknowledged write.
func writeUntilDead(base string, stop <-chan struct{}) []acked {
	client := &http.Client{Timeout: 10 * time.Second}
	var out []acked
	var last, lastCandidate string
	send := func(method, path string, body any) bool {
		res, err := sendTo(client, base, method, path, body)
		if err != nil || res.Status/100 != 2 {
			return false
		}
		var m domain.Memory
		if err := json.Unmarshal(res.Body, &m); err != nil || m.ID == "" {
			return false
		}
		out = append(out, acked{id: m.ID, seq: m.Seq, body: string(bytes.TrimSpace(res.Body))})
		last = m.ID
		return true
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return out
		default:
		}
		status := "active"
		if i%2 == 0 {
			status = "candidate"
		}
		ok := send("POST", "/memory", map[string]any{"memory_type": "episodic", "content": fmt.Sprintf("crash write %d", i), "status": status})
		if !ok {
			return out
		}
		if status == "candidate" {
			lastCandidate = last
		}
		switch {
		case i%3 == 1 && lastCandidate != "":
			ok = send("POST", "/memory/"+lastCandidate+"/promote", nil)
			lastCandidate = ""
		case i%5 == 4:
			ok = send("PUT", "/memory/"+last, map[string]any{"content": fmt.Sprintf("crash write %d, updated", i)})
		case i%7 == 6:
			ok = send("POST", "/memory/"+last+"/reinforce", nil)
		}
		if !ok {
			return out
		}
	}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	p := startProc(t, bin, dir)

	stop := make(chan struct{})
	writes := make(chan []acked, 1)
	go func() { writes <- writeUntilDead(p.URL, stop) }()
	time.Sleep(1500 * time.Millisecond) // the deliberate part: let writes flow, then kill in the middle
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	p.wait(10 * time.Second)
	close(stop)
	acks := <-writes
	require.GreaterOrEqual(t, len(acks), 10, "the writer got going before the kill\n%s", p.logs())
	t.Logf("%d writes acknowledged before SIGKILL", len(acks))

	// Restart on the same directory.
	p2 := startProc(t, bin, dir)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) response {
		t.Helper()
		res, err := sendTo(client, p2.URL, "GET", path, nil)
		require.NoError(t, err)
		return res
	}
	var h healthInfo
	require.Eventually(t, func() bool {
		res := get("/health")
		if res.Status != http.StatusOK {
			return false
		}
		res.Decode(t, &h)
		return h.Projections["memories"] == h.LastSeq
	}, 10*time.Second, 10*time.Millisecond, "the projections catch up with the log")
	require.GreaterOrEqual(t, h.LastSeq, acks[len(acks)-1].seq)

	// Every acknowledged write is there, with the state it was acknowledged with.
	latest := map[string]acked{}
	for _, a := range acks {
		latest[a.id] = a
	}
	audits := map[string][]byte{}
	for _, a := range acks {
		res := get("/memory/" + a.id)
		require.Equal(t, http.StatusOK, res.Status, "acknowledged write of %s at %d is lost", a.id, a.seq)
		var m domain.Memory
		res.Decode(t, &m)
		require.GreaterOrEqual(t, m.Seq, a.seq, "memory %s went back in time", a.id)
		if m.Seq == a.seq {
			require.JSONEq(t, a.body, string(res.Body))
		}
		if latest[a.id].seq == a.seq && m.Seq == a.seq {
			require.Equal(t, a.body, string(bytes.TrimSpace(res.Body)))
		}
		if audits[a.id] == nil {
			audits[a.id] = get("/memory/" + a.id + "/audit").Body
		}
		var v struct {
			Entries []struct {
				Seq   uint64          `json:"seq"`
				After json.RawMessage `json:"after"`
			} `json:"entries"`
		}
		require.NoError(t, json.Unmarshal(audits[a.id], &v))
		found := false
		for _, e := range v.Entries {
			if e.Seq == a.seq {
				require.JSONEq(t, a.body, string(e.After), "the audit records the acknowledged state")
				found = true
			}
		}
		require.True(t, found, "the audit of %s has the acknowledged write at %d", a.id, a.seq)
	}

	// Writes go on after the crash.
	res, err := sendTo(client, p2.URL, "POST", "/memory", map[string]any{"memory_type": "episodic", "content": "after the crash"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)

	// A graceful stop exits 0.
	require.NoError(t, p2.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p2.wait(20*time.Second), "graceful shutdown\n%s", p2.logs())

	// And the projections equal a rebuild of the log.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "verify", "--data", dir, "--log-format", "text").CombinedOutput()
	require.NoError(t, err, "memledger verify:\n%s", out)
	require.Contains(t, string(out), "verify: ok")
}

// A message in the log that is no event (written there by something other than memledger)
// neither stops the projections nor blocks the memory it sits among.
func TestMalformedMessageInTheLogIsSkipped(t *testing.T) {
	l := startLedger(t)
	m := l.create(map[string]any{"memory_type": "knowledge", "content": "before the garbage", "status": "candidate"})
	id := m["id"].(string)
	_, err := l.Main.Store.JetStream().Publish(context.Background(), "ledger.memory."+id, []byte("not json at all"))
	require.NoError(t, err)
	res := l.do("POST", "/memory/"+id+"/promote", nil)
	require.Equal(t, 200, res.Status, "%s", res.Body)
	require.Equal(t, "active", res.JSON(t)["status"])
	h := l.do("GET", "/health", nil).JSON(t)
	require.Equal(t, "ok", h["status"])
	// The first start's admin token, the memory, the garbage, the promotion.
	require.EqualValues(t, 4, h["last_seq"])
	require.EqualValues(t, 4, h["projections"].(map[string]any)["memories"])
	entries := l.do("GET", "/memory/"+id+"/audit", nil).JSON(t)["entries"].([]any)
	require.Len(t, entries, 2, "created and promoted; the garbage is no mutation")
}
