package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// send is do without the test's require: it returns an error instead of failing, so that
// goroutines other than the test's can use it.
func (l *ledger) send(method, path string, body any, headers ...string) (response, error) {
	return sendTo(http.DefaultClient, l.URL, method, path, body, headers...)
}

// sendTo sends a request to the server at base; body as for ledger.do.
func sendTo(client *http.Client, base, method, path string, body any, headers ...string) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return response{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: data}, nil
}

// expect sends a request and requires the answer to have the given status.
func (l *ledger) expect(status int, method, path string, body any, headers ...string) response {
	l.t.Helper()
	res := l.do(method, path, body, headers...)
	require.Equal(l.t, status, res.Status, "%s %s: body: %s", method, path, res.Body)
	return res
}

// healthInfo is the answer of GET /health.
type healthInfo struct {
	Status      string            `json:"status"`
	Version     string            `json:"version"`
	LastSeq     uint64            `json:"last_seq"`
	Projections map[string]uint64 `json:"projections"`
	Error       string            `json:"error"`
}

// health is /health once the projections have caught up after a start (while they catch up
// it answers 503, catching_up), which must be 200.
func (l *ledger) health() healthInfo {
	l.t.Helper()
	var h healthInfo
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := l.do("GET", "/health", nil)
		h = healthInfo{}
		res.Decode(l.t, &h)
		if h.Status != "catching_up" || time.Now().After(deadline) {
			require.Equal(l.t, http.StatusOK, res.Status, "GET /health: body: %s", res.Body)
			return h
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lastSeq is the log position of the last event, from /health.
func (l *ledger) lastSeq() uint64 {
	l.t.Helper()
	return l.health().LastSeq
}

// mem creates a memory and returns it decoded.
func (l *ledger) mem(body map[string]any, headers ...string) domain.Memory {
	l.t.Helper()
	res := l.do("POST", "/memory", body, headers...)
	require.Equal(l.t, http.StatusCreated, res.Status, "body: %s", res.Body)
	var m domain.Memory
	res.Decode(l.t, &m)
	require.NotEmpty(l.t, m.ID)
	return m
}

// get returns memory id decoded.
func (l *ledger) get(id string) domain.Memory {
	l.t.Helper()
	var m domain.Memory
	l.expect(http.StatusOK, "GET", "/memory/"+id, nil).Decode(l.t, &m)
	return m
}

// act sends a mutation that must succeed with 200 and returns the memory it answers.
func (l *ledger) act(method, path string, body any, headers ...string) domain.Memory {
	l.t.Helper()
	var m domain.Memory
	l.expect(http.StatusOK, method, path, body, headers...).Decode(l.t, &m)
	return m
}

// auditOf returns the audit entries of memory id, oldest first.
func (l *ledger) auditOf(id string) []projections.AuditEntry {
	l.t.Helper()
	var v struct {
		MemoryID string                   `json:"memory_id"`
		Entries  []projections.AuditEntry `json:"entries"`
	}
	l.expect(http.StatusOK, "GET", "/memory/"+id+"/audit", nil).Decode(l.t, &v)
	require.Equal(l.t, id, v.MemoryID)
	return v.Entries
}

// recent returns GET /admin/audit/recent with the query q.
func (l *ledger) recent(q url.Values) []projections.AuditEntry {
	l.t.Helper()
	path := "/admin/audit/recent"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var v struct {
		Entries []projections.AuditEntry `json:"entries"`
	}
	l.expect(http.StatusOK, "GET", path, nil).Decode(l.t, &v)
	return v.Entries
}

// listPage is one page of GET /memory.
type listPage struct {
	Memories   []domain.Memory `json:"memories"`
	NextCursor *string         `json:"next_cursor"`
}

// list returns one page of GET /memory with the query q.
func (l *ledger) list(q url.Values) listPage {
	l.t.Helper()
	var p listPage
	l.expect(http.StatusOK, "GET", "/memory?"+q.Encode(), nil).Decode(l.t, &p)
	return p
}

// listAll walks every page of GET /memory with the query q (limit included) and returns the
// ids in the order served.
func (l *ledger) listAll(q url.Values) []string {
	l.t.Helper()
	var ids []string
	q = cloneValues(q)
	for pages := 0; ; pages++ {
		require.Less(l.t, pages, 10000, "pagination does not end")
		p := l.list(q)
		for _, m := range p.Memories {
			ids = append(ids, m.ID)
		}
		if p.NextCursor == nil {
			return ids
		}
		q.Set("cursor", *p.NextCursor)
	}
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	return out
}

func ids(ms ...domain.Memory) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func reversed[T any](xs []T) []T {
	out := slices.Clone(xs)
	slices.Reverse(out)
	return out
}

func actions(entries []projections.AuditEntry) []domain.Action {
	out := make([]domain.Action, len(entries))
	for i, e := range entries {
		out[i] = e.Action
	}
	return out
}

// snapshot decodes an audit entry's before or after.
func snapshot(t *testing.T, raw json.RawMessage) *domain.Memory {
	t.Helper()
	if string(raw) == "null" {
		return nil
	}
	var m domain.Memory
	require.NoError(t, json.Unmarshal(raw, &m), "snapshot: %s", raw)
	return &m
}

// problemBody is an RFC 9457 problem answer.
type problemBody struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
	Field    string `json:"field"`
}

// requireProblem checks res is a problem answer with the status, naming field (when not
// empty) and with a detail containing each of details (case-insensitive).
func requireProblem(t *testing.T, res response, status int, field string, details ...string) problemBody {
	t.Helper()
	require.Equal(t, status, res.Status, "body: %s", res.Body)
	require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"), "body: %s", res.Body)
	var p problemBody
	res.Decode(t, &p)
	require.Equal(t, status, p.Status)
	require.NotEmpty(t, p.Title)
	require.NotEmpty(t, p.Detail)
	if field != "" {
		require.Equal(t, field, p.Field, "detail: %s", p.Detail)
	}
	for _, d := range details {
		require.Contains(t, strings.ToLower(p.Detail), strings.ToLower(d), "field %q", p.Field)
	}
	return p
}

// clock is a settable clock for withClock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// race runs fn(i) for i in [0, n) in n goroutines released at the same moment and returns
// their answers in order of i. A transport error fails the test.
func race(t *testing.T, n int, fn func(i int) (response, error)) []response {
	t.Helper()
	out := make([]response, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i], errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "goroutine %d", i)
	}
	return out
}

func describe(rs []response) string {
	var b strings.Builder
	for i, r := range rs {
		fmt.Fprintf(&b, "%d: %d %s", i, r.Status, bytes.TrimSpace(r.Body))
		b.WriteByte('\n')
	}
	return b.String()
}
