package tests

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

// gate holds the projection runner's batches back while it is closed (a hook for
// withProjectionsHook); it is open until hold is called.
type gate struct {
	mu      sync.Mutex
	open    chan struct{}
	held    chan struct{} // closed once a batch waits at the closed gate
	heldOne sync.Once
}

func newGate() *gate {
	g := &gate{open: make(chan struct{}), held: make(chan struct{})}
	close(g.open)
	return g
}

// hold closes the gate: the next batch waits at it.
func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open, g.held, g.heldOne = make(chan struct{}), make(chan struct{}), sync.Once{}
}

// release opens the gate.
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// waitHeld returns once a batch waits at the closed gate.
func (g *gate) waitHeld(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("no batch of the projections reached the gate")
	}
}

func (g *gate) hook(batch []domain.Event) error {
	g.mu.Lock()
	open, held, once := g.open, g.held, &g.heldOne
	g.mu.Unlock()
	select {
	case <-open:
		return nil
	default:
	}
	once.Do(func() { close(held) })
	<-open
	return nil
}

func withProjectionsHook(h func([]domain.Event) error) func(*ledger) {
	return func(l *ledger) { l.projectionsHook = h }
}

// answerOf sends a request in the background and returns the channel its answer comes on.
func (l *ledger) answerOf(method, path string, body any, headers ...string) <-chan response {
	out := make(chan response, 1)
	go func() {
		res, err := l.send(method, path, body, headers...)
		if err != nil {
			res = response{Status: -1, Body: []byte(err.Error())}
		}
		out <- res
	}()
	return out
}

// requireWaiting requires that no answer has come on ch yet (a read that must wait).
func requireWaiting(t *testing.T, ch <-chan response, what string) {
	t.Helper()
	select {
	case res := <-ch:
		t.Fatalf("%s answered %d while the projections were held back: %s", what, res.Status, res.Body)
	case <-time.After(300 * time.Millisecond):
	}
}

func receive(t *testing.T, ch <-chan response) response {
	t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(60 * time.Second):
		t.Fatal("no answer")
	}
	return response{}
}

func position(t *testing.T, res response) uint64 {
	t.Helper()
	v := res.Header.Get("Memledger-Position")
	require.NotEmpty(t, v, "no Memledger-Position on the answer: %s", res.Body)
	n, err := strconv.ParseUint(v, 10, 64)
	require.NoError(t, err)
	return n
}

type catchUpHealth struct {
	Status     string `json:"status"`
	LastSeq    uint64 `json:"last_seq"`
	CatchingUp *struct {
		Position uint64 `json:"position"`
		Target   uint64 `json:"target"`
	} `json:"catching_up"`
}

// A start without projections on a log that holds memories: while they catch up, /health says
// catching_up with the position and the target, and reads wait instead of answering 404; once
// caught up they answer, stating the position they were served at.
func TestReadsWaitWhileCatchingUp(t *testing.T) {
	g := newGate()
	l := startLedger(t, withProjectionsHook(g.hook))
	t.Cleanup(g.release) // before the ledger stops
	var ids []string
	for i := range 20 {
		ids = append(ids, l.mem(map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("fact %d", i)}).ID)
	}
	last := l.lastSeq()
	l.stop()
	require.NoError(t, os.Remove(l.cfg.ProjectionsPath()))

	g.hold()
	l.start()
	g.waitHeld(t)
	res := l.expect(http.StatusServiceUnavailable, "GET", "/health", nil)
	var h catchUpHealth
	res.Decode(t, &h)
	require.Equal(t, "catching_up", h.Status, "%s", res.Body)
	require.NotNil(t, h.CatchingUp, "%s", res.Body)
	require.Equal(t, uint64(0), h.CatchingUp.Position)
	require.Equal(t, last, h.CatchingUp.Target)

	read := l.answerOf("GET", "/memory/"+ids[len(ids)-1], nil)
	list := l.answerOf("GET", "/memory?limit=50", nil)
	requireWaiting(t, read, "a read of an acknowledged memory")
	requireWaiting(t, list, "a list")
	g.release()

	res = receive(t, read)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.GreaterOrEqual(t, position(t, res), last)
	res = receive(t, list)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	var page listPage
	res.Decode(t, &page)
	require.Len(t, page.Memories, len(ids))
	eventually(t, func() bool {
		r, err := l.send("GET", "/health", nil)
		return err == nil && r.Status == http.StatusOK
	}, "health ok once caught up")
	res = l.expect(http.StatusOK, "GET", "/health", nil)
	h = catchUpHealth{}
	res.Decode(t, &h)
	require.Equal(t, "ok", h.Status)
	require.Nil(t, h.CatchingUp)
}

// A read that cannot wait long enough answers 503 with Retry-After and a problem that says
// where the projections are.
func TestReadDuringCatchUpAnswers503AfterItsWait(t *testing.T) {
	g := newGate()
	l := startLedger(t, withProjectionsHook(g.hook), withConfig(func(c *app.Config) { c.ReadWait = 200 * time.Millisecond }))
	t.Cleanup(g.release) // before the ledger stops
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "acknowledged"})
	l.stop()
	require.NoError(t, os.Remove(l.cfg.ProjectionsPath()))
	g.hold()
	l.start()
	defer g.release()
	g.waitHeld(t)
	res := l.do("GET", "/memory/"+m.ID, nil)
	requireProblem(t, res, http.StatusServiceUnavailable, "", "catching up", "behind")
	require.Equal(t, "1", res.Header.Get("Retry-After"))
	res = l.do("GET", "/ui/memory/"+m.ID, nil)
	require.Equal(t, http.StatusServiceUnavailable, res.Status)
	require.Equal(t, "1", res.Header.Get("Retry-After"))
	require.Contains(t, res.Header.Get("Content-Type"), "text/html")
}

// Read-your-writes: a read with min_seq (or the Memledger-Min-Seq header) waits until the
// projections have applied that position; one without answers at once from where they are
// and says so.
func TestReadYourWritesWithMinSeq(t *testing.T) {
	g := newGate()
	l := startLedger(t, withProjectionsHook(g.hook))
	t.Cleanup(g.release) // before the ledger stops
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "first"})
	res := l.expect(http.StatusOK, "GET", "/memory/"+m.ID, nil)
	require.Equal(t, m.Seq, position(t, res))

	defer g.release()
	update, written := heldUpdate(t, l, g, m, "second")

	// Without min_seq: served now, from the position the projections are at.
	res = l.expect(http.StatusOK, "GET", "/memory/"+m.ID, nil)
	require.Equal(t, m.Seq, position(t, res))
	require.Equal(t, "first", res.JSON(t)["content"])

	byQuery := l.answerOf("GET", fmt.Sprintf("/memory/%s?min_seq=%d", m.ID, written), nil)
	byHeader := l.answerOf("GET", "/memory/"+m.ID+"/audit", nil, "Memledger-Min-Seq", strconv.FormatUint(written, 10))
	list := l.answerOf("GET", fmt.Sprintf("/memory?status=active&min_seq=%d", written), nil)
	requireWaiting(t, byQuery, "a read with min_seq")
	requireWaiting(t, byHeader, "a read with Memledger-Min-Seq")
	g.release()

	res = receive(t, byQuery)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Equal(t, "second", res.JSON(t)["content"])
	require.GreaterOrEqual(t, position(t, res), written)
	res = receive(t, byHeader)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Len(t, res.JSON(t)["entries"], 2)
	res = receive(t, list)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.GreaterOrEqual(t, position(t, res), written)
	res = receive(t, update)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)

	// Every read states its position, and takes min_seq.
	for _, path := range []string{"/memory", "/memory/search?q=second", "/projects", "/project/state",
		"/admin/audit/recent", "/admin/alerts", "/admin/integrity", "/admin/nightly", "/admin/dashboard",
		"/admin/subscriptions", "/ui/", "/ui/review"} {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		res := l.expect(http.StatusOK, "GET", path+sep+"min_seq="+strconv.FormatUint(written, 10), nil)
		require.GreaterOrEqual(t, position(t, res), written, path)
	}

	// A position the log does not hold, or none at all, is the client's mistake.
	requireProblem(t, l.do("GET", fmt.Sprintf("/memory/%s?min_seq=%d", m.ID, written+1000), nil), http.StatusBadRequest, "min_seq", "beyond the log's end")
	requireProblem(t, l.do("GET", "/memory/"+m.ID, nil, "Memledger-Min-Seq", "soon"), http.StatusBadRequest, "Memledger-Min-Seq", "log position")
	requireProblem(t, l.do("GET", "/memory?min_seq=-1", nil), http.StatusBadRequest, "min_seq")
}

// heldUpdate holds the projections back with g and updates memory m to content: it returns
// the update's answer, which comes once g lets go, and the log position the update was
// written at, which the projections have not applied.
func heldUpdate(t *testing.T, l *ledger, g *gate, m domain.Memory, content string) (<-chan response, uint64) {
	t.Helper()
	g.hold()
	update := l.answerOf("PUT", "/memory/"+m.ID, map[string]any{"content": content})
	g.waitHeld(t)
	var h catchUpHealth
	eventually(t, func() bool {
		l.expect(http.StatusOK, "GET", "/health", nil).Decode(t, &h)
		return h.LastSeq > m.Seq
	}, "the update is in the log")
	return update, h.LastSeq
}

// A read whose min_seq the projections do not reach within the wait answers 503.
func TestMinSeqNotReachedAnswers503(t *testing.T) {
	g := newGate()
	l := startLedger(t, withProjectionsHook(g.hook), withConfig(func(c *app.Config) { c.ReadWait = 200 * time.Millisecond }))
	t.Cleanup(g.release) // before the ledger stops
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "first"})
	defer g.release()
	update, written := heldUpdate(t, l, g, m, "second")
	res := l.do("GET", fmt.Sprintf("/memory/%s?min_seq=%d", m.ID, written), nil)
	requireProblem(t, res, http.StatusServiceUnavailable, "", "min_seq", fmt.Sprintf("position %d", m.Seq))
	require.Equal(t, "1", res.Header.Get("Retry-After"))
	g.release()
	require.Equal(t, http.StatusOK, receive(t, update).Status)
}
