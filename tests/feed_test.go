package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/handlers/feed"
	"github.com/stretchr/testify/require"
)

// feedItem is one line of the change feed: an event, or the end line.
type feedItem struct {
	Seq     uint64          `json:"seq"`
	Subject string          `json:"subject"`
	MsgID   string          `json:"msg_id"`
	Event   json.RawMessage `json:"event"`
	// The end line's fields.
	End      string `json:"end"`
	Reason   string `json:"reason"`
	LastSeq  uint64 `json:"last_seq"`
	NextFrom uint64 `json:"next_from"`
}

// eventType is the item's event's type.
func (it feedItem) eventType() string {
	var e struct {
		Type string `json:"type"`
	}
	json.Unmarshal(it.Event, &e)
	return e.Type
}

// feedAll reads a bounded NDJSON feed to its end: its events and its end line.
func (l *ledger) feedAll(q url.Values) ([]feedItem, feedItem) {
	l.t.Helper()
	res := l.expect(http.StatusOK, "GET", "/events?"+q.Encode(), nil)
	require.Equal(l.t, "application/x-ndjson", res.Header.Get("Content-Type"))
	var evs []feedItem
	var end feedItem
	for i, line := range strings.Split(strings.TrimSuffix(string(res.Body), "\n"), "\n") {
		var it feedItem
		require.NoError(l.t, json.Unmarshal([]byte(line), &it), "line %d: %s", i, line)
		if it.End != "" {
			end = it
			require.Empty(l.t, end.Reason == "" && end.End != feed.EndComplete, "an end says why")
			continue
		}
		require.Empty(l.t, end.End, "nothing after the end line")
		evs = append(evs, it)
	}
	require.NotEmpty(l.t, end.End, "the feed ends with an end line")
	return evs, end
}

func itemSeqs(items []feedItem) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.Seq
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	out := []uint64{}
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestFeedBounded(t *testing.T) {
	now := time.Date(2026, 4, 16, 12, 0, 0, 0, time.UTC)
	clk := newClock(now.Add(-28 * 24 * time.Hour)) // the first start's admin token, before the history
	l := startLedger(t, withClock(clk.Now))
	memIDs := wholeHistory(t, l, clk, now)
	last := l.lastSeq()

	all, end := l.feedAll(url.Values{"to": {fmt.Sprint(last)}})
	require.Equal(t, seqRange(1, last), itemSeqs(all))
	require.Equal(t, feed.EndComplete, end.End)
	require.Equal(t, last, end.LastSeq)
	require.Equal(t, last+1, end.NextFrom)
	// Each event as stored: the export's lines are the feed's.
	for _, it := range all {
		require.True(t, strings.HasPrefix(it.Subject, "ledger."))
		var env struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(it.Event, &env))
		require.Equal(t, env.ID, it.MsgID)
	}

	t.Run("from 0, from the middle, with a limit", func(t *testing.T) {
		got, _ := l.feedAll(url.Values{"from": {"0"}, "to": {fmt.Sprint(last)}})
		require.Equal(t, all, got)
		got, end := l.feedAll(url.Values{"from": {"10"}, "to": {"20"}})
		require.Equal(t, seqRange(10, 20), itemSeqs(got))
		require.Equal(t, all[9:20], got)
		require.Equal(t, uint64(21), end.NextFrom)
		got, end = l.feedAll(url.Values{"from": {"10"}, "limit": {"3"}})
		require.Equal(t, []uint64{10, 11, 12}, itemSeqs(got))
		require.Equal(t, uint64(13), end.NextFrom)
		for _, from := range []string{fmt.Sprint(last + 1), "now"} {
			got, end = l.feedAll(url.Values{"from": {from}, "limit": {"3"}})
			require.Empty(t, got)
			require.Equal(t, last+1, end.NextFrom)
		}
	})

	t.Run("from and to a time", func(t *testing.T) {
		// The history's first events are three weeks old; the rest are at now and after.
		got, _ := l.feedAll(url.Values{"from": {now.Format(time.RFC3339)}, "to": {fmt.Sprint(last)}})
		require.NotEmpty(t, got)
		require.Greater(t, got[0].Seq, uint64(1))
		for _, it := range all[:got[0].Seq-1] {
			require.Less(t, eventTime(t, it), now, "seq %d is before from", it.Seq)
		}
		for _, it := range got {
			require.False(t, eventTime(t, it).Before(now), "seq %d", it.Seq)
		}
		require.Equal(t, all[got[0].Seq-1:], got)
		older, end := l.feedAll(url.Values{"to": {now.Add(-time.Nanosecond).Format(time.RFC3339Nano)}})
		require.Equal(t, seqRange(1, got[0].Seq-1), itemSeqs(older), "to a time: the events at or before it")
		require.Equal(t, got[0].Seq, end.NextFrom)
		after, _ := l.feedAll(url.Values{"from": {now.Add(time.Hour).Format(time.RFC3339)}, "limit": {"5"}})
		require.Empty(t, after, "nothing at or after a time later than the log's last event")
	})

	t.Run("subject and type filters", func(t *testing.T) {
		id := memIDs[4] // prefers neovim: created, updated, superseded by another
		got, end := l.feedAll(url.Values{"subject": {"ledger.memory." + id}, "limit": {"100"}})
		require.NotEmpty(t, got)
		for _, it := range got {
			require.Equal(t, "ledger.memory."+id, it.Subject)
		}
		require.Equal(t, len(l.auditOf(id)), len(got), "one event per audit entry")
		require.Equal(t, last+1, end.NextFrom, "next_from is past what the filter skipped")

		got, _ = l.feedAll(url.Values{"subject": {"ledger.alert.>", "ledger.state.*"}, "limit": {"1000"}})
		var want []uint64
		for _, it := range all {
			if strings.HasPrefix(it.Subject, "ledger.alert.") || strings.HasPrefix(it.Subject, "ledger.state.") {
				want = append(want, it.Seq)
			}
		}
		require.NotEmpty(t, want)
		require.Equal(t, want, itemSeqs(got))

		got, _ = l.feedAll(url.Values{"type": {"memory.promoted", "alert.raised"}, "limit": {"1000"}})
		want = nil
		for _, it := range all {
			if tp := it.eventType(); tp == "memory.promoted" || tp == "alert.raised" {
				want = append(want, it.Seq)
			}
		}
		require.NotEmpty(t, want)
		require.Equal(t, want, itemSeqs(got))

		// Both: an event passes when its subject and its type match.
		got, _ = l.feedAll(url.Values{"type": {"memory.updated"}, "subject": {"ledger.memory." + id}, "limit": {"1000"}})
		require.Len(t, got, 1)
		require.Equal(t, "memory.updated", got[0].eventType())
	})

	t.Run("bad requests", func(t *testing.T) {
		for q, field := range map[string]string{
			"from=yesterday":                 "from",
			"from=" + fmt.Sprint(last+2):     "from",
			"to=" + fmt.Sprint(last+1):       "to",
			"from=10&to=5":                   "to",
			"limit=0":                        "limit",
			"subject=orders.>":               "subject",
			"subject=ledger.memories.>":      "subject",
			"subject=ledger.memory.a.b":      "subject",
			"type=memory.archived":           "type",
			"since=1h":                       "since",
			"from=2026-04-16T12:00:00%2B02:": "from",
		} {
			res := l.do("GET", "/events?"+q, nil)
			requireProblem(t, res, http.StatusBadRequest, field)
		}
		requireProblem(t, l.do("GET", "/events?to=3", nil, "Last-Event-ID", "x"), http.StatusBadRequest, "Last-Event-ID")
		requireProblem(t, l.do("GET", "/events?to=3", nil, "Last-Event-ID", fmt.Sprint(last+1)), http.StatusBadRequest, "Last-Event-ID", "beyond the log's end")
		requireProblem(t, l.do("GET", "/events?to="+fmt.Sprint(last+1), nil), http.StatusBadRequest, "to", "beyond the log's end")
	})
}

func eventTime(t *testing.T, it feedItem) time.Time {
	var e struct {
		Time time.Time `json:"time"`
	}
	require.NoError(t, json.Unmarshal(it.Event, &e))
	return e.Time
}

// openFeed opens a following feed and returns a reader of its lines; it is closed at the end
// of the test.
func openFeed(t *testing.T, client *http.Client, base, query string, headers ...string) (*bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/events?"+query, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := client.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	closeFn := func() {
		cancel()
		res.Body.Close()
	}
	t.Cleanup(closeFn)
	return bufio.NewReaderSize(res.Body, 1<<20), closeFn
}

func readItem(t *testing.T, r *bufio.Reader) feedItem {
	t.Helper()
	line, err := r.ReadBytes('\n')
	require.NoError(t, err)
	var it feedItem
	require.NoError(t, json.Unmarshal(line, &it), "%s", line)
	return it
}

// TestFeedCatchUpThenLive follows the feed from the log's start while writers race the end of
// its catch-up: every event arrives once, in order, with nothing missing at the seam.
func TestFeedCatchUpThenLive(t *testing.T) {
	l := startLedger(t, withFsync("interval"))
	for i := range 200 {
		l.mem(map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("before %d", i)})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				res, err := l.send("POST", "/memory", map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("during %d-%d", w, i)})
				if err == nil && res.Status != http.StatusCreated {
					err = fmt.Errorf("status %d: %s", res.Status, res.Body)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	r, closeFeed := openFeed(t, http.DefaultClient, l.URL, "from=1")
	var got []uint64
	for len(got) < 200 {
		got = append(got, readItem(t, r).Seq)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Live, after the writers.
	for i := range 5 {
		l.mem(map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("after %d", i)})
	}
	last := l.lastSeq()
	require.Equal(t, uint64(1+200+320+5), last) // the first start's admin token, then the memories
	for uint64(len(got)) < last {
		it := readItem(t, r)
		require.Empty(t, it.End)
		got = append(got, it.Seq)
	}
	closeFeed()
	require.Equal(t, seqRange(1, last), got, "every event once, in order")
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	ID, Event, Data string
}

func readSSE(t *testing.T, r *bufio.Reader) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.Data != "" {
				return ev
			}
		case strings.HasPrefix(line, ":"): // a comment (keep-alive)
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.Data = line[6:]
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
}

func TestFeedServerSentEvents(t *testing.T) {
	l := startLedger(t, withFsync("interval"))
	for i := range 30 {
		l.mem(map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("fact %d", i)})
	}
	r, closeFeed := openFeed(t, http.DefaultClient, l.URL, "from=1", "Accept", "text/event-stream")
	var lastID string
	for i := range 12 {
		ev := readSSE(t, r)
		require.Equal(t, fmt.Sprint(i+1), ev.ID, "the id is the log position")
		require.Empty(t, ev.Event)
		var it feedItem
		require.NoError(t, json.Unmarshal([]byte(ev.Data), &it))
		require.Equal(t, uint64(i+1), it.Seq)
		lastID = ev.ID
	}
	closeFeed()
	// More events while the client is away.
	for i := range 10 {
		l.mem(map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("later %d", i)})
	}
	// Resumed by Last-Event-ID (as a browser's EventSource reconnects), with from ignored.
	r, _ = openFeed(t, http.DefaultClient, l.URL, "from=1", "Accept", "text/event-stream", "Last-Event-ID", lastID)
	for want := 13; want <= 40; want++ {
		ev := readSSE(t, r)
		require.Equal(t, fmt.Sprint(want), ev.ID)
	}
	// A bounded SSE feed ends with an end event.
	r, _ = openFeed(t, http.DefaultClient, l.URL, "from=39&to=40", "Accept", "text/event-stream")
	require.Equal(t, "39", readSSE(t, r).ID)
	require.Equal(t, "40", readSSE(t, r).ID)
	end := readSSE(t, r)
	require.Equal(t, "end", end.Event)
	require.Empty(t, end.ID, "the end event keeps the last id")
	var e feedItem
	require.NoError(t, json.Unmarshal([]byte(end.Data), &e))
	require.Equal(t, feed.EndComplete, e.End)
	require.Equal(t, uint64(41), e.NextFrom)
}

// TestFeedSlowReader opens a feed that stops reading: the feed holds at most its bounded
// buffer, cuts the reader with a last line that says why and where to resume, and the reader
// resumes from there without losing or repeating an event.
func TestFeedSlowReader(t *testing.T) {
	l := startLedger(t, withFsync("interval"))
	const buffer = 16 << 10
	f := l.Main.API.Feed
	f.BufferBytes, f.StallTimeout, f.WriteTimeout = buffer, 300*time.Millisecond, time.Minute
	content := strings.Repeat("x", 1990)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 320 {
				l.send("POST", "/memory", map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("%d-%d %s", w, i, content)})
			}
		}()
	}
	wg.Wait()
	last := l.lastSeq()
	// About 6 MB of events: more than the kernel's socket buffers take (4 MB at most for the
	// server's side on Linux), so that the server's writes block.
	require.Equal(t, uint64(1+2560), last) // the first start's admin token, then the memories

	// A client whose socket takes little, so that the server's writes block soon.
	client := &http.Client{Transport: tokenTransport{next: &http.Transport{DialContext: (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}).DialContext}}}
	r, _ := openFeed(t, client, l.URL, "from=1")
	first := readItem(t, r)
	require.Equal(t, uint64(1), first.Seq)
	// The reader stops reading; the feed is cut once its buffer stayed full for the timeout.
	require.Eventually(t, func() bool { return f.Stats().Cut == 1 }, 2*time.Minute, 10*time.Millisecond, "%+v", f.Stats())
	line := 2200 // an event line's size, about
	require.LessOrEqual(t, f.Stats().PeakHeldBytes, int64(2*buffer+line), "the feed held no more than its bound")

	// The reader reads on: the events it was sent, then the end line.
	got := []uint64{1}
	var end feedItem
	for {
		it := readItem(t, r)
		if it.End != "" {
			end = it
			break
		}
		got = append(got, it.Seq)
	}
	_, err := r.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the feed ends after its end line")
	require.Equal(t, seqRange(1, uint64(len(got))), got)
	require.Less(t, uint64(len(got)), last, "cut before the end")
	require.Equal(t, feed.EndCut, end.End)
	require.Contains(t, end.Reason, "did not keep up")
	require.Equal(t, uint64(len(got)), end.LastSeq)
	require.Equal(t, end.LastSeq+1, end.NextFrom)
	require.Contains(t, end.Reason, "from="+strconv.FormatUint(end.NextFrom, 10))
	require.Eventually(t, func() bool { return f.Stats().Open == 0 && f.Stats().HeldBytes == 0 }, 10*time.Second, 10*time.Millisecond,
		"the cut feed holds nothing")

	// Resumed where it said.
	rest, _ := l.feedAll(url.Values{"from": {fmt.Sprint(end.NextFrom)}, "to": {fmt.Sprint(last)}})
	require.Equal(t, seqRange(end.NextFrom, last), itemSeqs(rest))
}

func TestTail(t *testing.T) {
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "first", "status": "candidate"})
	l.act("POST", "/memory/"+m.ID+"/promote", map[string]any{"note": "checked"}, "X-Actor", "human-triage")

	run := func(args ...string) (*syncBuffer, func() (int, string)) {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut syncBuffer
		done := make(chan int, 1)
		go func() { done <- app.Run(ctx, append([]string{"tail", "--addr", l.URL}, args...), &out, &errOut) }()
		return &out, func() (int, string) {
			cancel()
			select {
			case code := <-done:
				return code, errOut.String()
			case <-time.After(time.Minute):
				t.Fatal("tail does not stop")
				return 0, ""
			}
		}
	}
	lines := func(b *syncBuffer) []string {
		return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	}

	out, stop := run("--from", "2") // after the first start's admin token
	require.Eventually(t, func() bool { return len(lines(out)) == 2 }, 10*time.Second, 10*time.Millisecond)
	// Live.
	l.act("POST", "/memory/"+m.ID+"/reinforce", nil, "X-Actor", "reinforcement")
	require.Eventually(t, func() bool { return len(lines(out)) == 3 }, 10*time.Second, 10*time.Millisecond)
	code, errOut := stop()
	require.Equal(t, 0, code, errOut)
	got := lines(out)
	require.Regexp(t, `^#2 \S+ memory.created ledger.memory.`+m.ID+` by `+principal+`$`, got[0])
	require.Regexp(t, `^#3 \S+ memory.promoted ledger.memory.`+m.ID+` by human-triage: checked$`, got[1])
	require.Regexp(t, `^#4 \S+ memory.reinforced `, got[2])

	// Filters and JSON.
	out, stop = run("--json", "--type", "alert.raised", "--from", "5")
	l.act("POST", "/memory/"+m.ID+"/reinforce", nil)
	l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"severity": "info", "title": "hello"})
	require.Eventually(t, func() bool { return strings.Count(out.String(), "\n") >= 1 }, 10*time.Second, 10*time.Millisecond)
	code, errOut = stop()
	require.Equal(t, 0, code, errOut)
	var it feedItem
	require.NoError(t, json.Unmarshal([]byte(lines(out)[0]), &it))
	require.Equal(t, "alert.raised", it.eventType())
	require.Equal(t, uint64(6), it.Seq)

	// Refused filters are reported.
	code, _, errOut2 := runApp(t, "tail", "--addr", l.URL, "--subject", "orders.>")
	require.Equal(t, 1, code)
	require.Contains(t, errOut2, "subject filter")
}

// TestFeedNeedsReader: the change feed is the log itself, so it is a reader's. Without a
// token, or with one that is not valid, it is refused with a 401 before anything is streamed,
// as NDJSON and as Server-Sent Events; a reader's token reads it, live as well as bounded;
// once revoked, that token is refused too.
func TestFeedNeedsReader(t *testing.T) {
	l := startLedger(t)
	l.mem(map[string]any{"memory_type": "knowledge", "content": "in the log"})
	last := l.lastSeq()
	bounded := fmt.Sprintf("/events?to=%d", last)
	for _, h := range [][]string{
		{noToken, "1"},
		{noToken, "1", "Accept", "text/event-stream"},
		{"Authorization", "Bearer mlt_not-a-token"},
		{"Authorization", "Basic " + adminToken(t, l.cfg.Data)},
	} {
		res := l.do("GET", bounded, nil, h...)
		p := requireProblem(t, res, http.StatusUnauthorized, "")
		require.Contains(t, res.Header.Get("WWW-Authenticate"), "Bearer", "%v", h)
		require.NotEmpty(t, p.Detail)
		require.NotContains(t, string(res.Body), `"seq"`, "nothing of the log is sent")
	}

	reader := l.token("feed-reader", "reader", nil)
	res := l.expect(http.StatusOK, "GET", bounded, nil, "Authorization", "Bearer "+reader)
	lines := strings.Split(strings.TrimSuffix(string(res.Body), "\n"), "\n")
	require.Len(t, lines, int(last)+1, "every event and the end line")
	require.Contains(t, lines[len(lines)-1], `"end":"complete"`)

	// Live, and as Server-Sent Events, the reader follows what is written next.
	r, _ := openFeed(t, http.DefaultClient, l.URL, "from=now", "Authorization", "Bearer "+reader)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "after the reader began"})
	it := readItem(t, r)
	require.Equal(t, m.Seq, it.Seq)
	sse, _ := openFeed(t, http.DefaultClient, l.URL, fmt.Sprintf("from=%d", m.Seq), "Authorization", "Bearer "+reader,
		"Accept", "text/event-stream")
	require.Equal(t, fmt.Sprint(m.Seq), readSSE(t, sse).ID)

	l.expect(http.StatusOK, "DELETE", "/admin/tokens/feed-reader", nil)
	requireProblem(t, l.do("GET", bounded, nil, "Authorization", "Bearer "+reader), http.StatusUnauthorized, "")
}
