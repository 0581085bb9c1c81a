package subscriptions_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// openLog opens a log on an embedded server in a temporary directory.
func openLog(t *testing.T) (*eventstore.Store, jetstream.Stream) {
	t.Helper()
	s := eventstore.New(t.TempDir())
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	st, err := s.JetStream().Stream(t.Context(), s.Stream)
	require.NoError(t, err)
	return s, st
}

// publish writes an event of the given kind to the log as the store would, and returns its
// id and position.
func publish(t *testing.T, s *eventstore.Store, aggregate string, p domain.Payload) (string, uint64) {
	t.Helper()
	ev := domain.NewEvent(aggregate, domain.Meta{EventID: uuid.NewString(), Actor: "test", Time: time.Now()}, p)
	subject, err := eventstore.Subject(ev)
	require.NoError(t, err)
	data, err := eventstore.Encode(ev)
	require.NoError(t, err)
	ack, err := s.JetStream().Publish(t.Context(), subject, data, jetstream.WithMsgID(ev.ID))
	require.NoError(t, err)
	return ev.ID, ack.Sequence
}

func publishMemory(t *testing.T, s *eventstore.Store) (string, uint64) {
	return publish(t, s, uuid.NewString(), domain.MemoryCreated{MemoryType: domain.TypeKnowledge,
		Content: "fact", Status: domain.StatusActive, Confidence: 1})
}

func publishAlert(t *testing.T, s *eventstore.Store) (string, uint64) {
	return publish(t, s, "warning", domain.AlertRaised{Severity: domain.SeverityWarning, Title: "t"})
}

// delivery is one request a receiver took.
type delivery struct {
	ID, Type string
	Seq      uint64
	Attempt  int
	Body     []byte
	SigErr   error
}

// receiver is a local webhook receiver whose behaviour the test switches: answer 200, fail
// with 503, or answer slowly (after the client's timeout). It can go away and come back on the
// same address.
type receiver struct {
	t      *testing.T
	secret []byte
	addr   string

	mu       sync.Mutex
	mode     string
	got      []delivery // every request answered 200
	failed   int
	srv      *http.Server
	requests int
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{t: t, secret: []byte(secret), mode: "ok"}
	r.start("127.0.0.1:0")
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) URL() string { return "http://" + r.addr + "/hook" }

func (r *receiver) start(addr string) {
	var ln net.Listener
	var err error
	// The address was just given up; on a busy machine it may take a moment to be free.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(r.t, err)
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(r.serve)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

func (r *receiver) stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (r *receiver) setMode(m string) {
	r.mu.Lock()
	r.mode = m
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, q *http.Request) {
	body, _ := io.ReadAll(q.Body)
	r.mu.Lock()
	mode := r.mode
	r.requests++
	r.mu.Unlock()
	switch mode {
	case "fail":
		r.mu.Lock()
		r.failed++
		r.mu.Unlock()
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	case "slow":
		select {
		case <-time.After(2 * time.Second):
		case <-q.Context().Done():
		}
		return
	}
	seq, _ := strconv.ParseUint(q.Header.Get(subscriptions.SeqHeader), 10, 64)
	attempt, _ := strconv.Atoi(q.Header.Get(subscriptions.AttemptHeader))
	d := delivery{ID: q.Header.Get(subscriptions.EventIDHeader), Type: q.Header.Get(subscriptions.EventTypeHeader),
		Seq: seq, Attempt: attempt, Body: body,
		SigErr: subscriptions.Verify(r.secret, body, q.Header.Get(subscriptions.SignatureHeader), time.Now(), subscriptions.DefaultTolerance)}
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// waitFor polls until the receiver holds at least n deliveries.
func (r *receiver) waitFor(n int) []delivery {
	r.t.Helper()
	require.Eventually(r.t, func() bool { return len(r.deliveries()) >= n }, 60*time.Second, 20*time.Millisecond,
		"the receiver got %d of %d deliveries", len(r.deliveries()), n)
	return r.deliveries()
}

// firstOfEach keeps the first delivery of each event id: deliveries are at least once.
func firstOfEach(ds []delivery) []delivery {
	seen := map[string]bool{}
	var out []delivery
	for _, d := range ds {
		if !seen[d.ID] {
			seen[d.ID] = true
			out = append(out, d)
		}
	}
	return out
}

// runFeed opens f and runs it until the test ends or the returned stop is called.
func runFeed(t *testing.T, f *subscriptions.Feed) (stop func()) {
	t.Helper()
	require.NoError(t, f.Open(t.Context()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.ErrorIs(t, err, context.Canceled)
			case <-time.After(30 * time.Second):
				t.Fatal("the feed did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newFeed(st jetstream.Stream, name string, hook *subscriptions.Webhook, start subscriptions.Start, subjects ...string) *subscriptions.Feed {
	return &subscriptions.Feed{Stream: st, Name: name, Subjects: subjects, Start: start, Deliver: hook.Deliver,
		Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
}

type want struct {
	id  string
	seq uint64
}

// requireInOrder requires ds, once de-duplicated, to be exactly ws in order, each signed.
func requireInOrder(t *testing.T, ws []want, ds []delivery) {
	t.Helper()
	firsts := firstOfEach(ds)
	require.Len(t, firsts, len(ws))
	for i, w := range ws {
		require.Equal(t, w.id, firsts[i].ID, "delivery %d", i)
		require.Equal(t, w.seq, firsts[i].Seq, "delivery %d", i)
		require.NoError(t, firsts[i].SigErr, "delivery %d", i)
	}
	// Never out of order, even counting the repeats: a repeat is of the last event delivered.
	for i := 1; i < len(ds); i++ {
		require.GreaterOrEqual(t, ds[i].Seq, ds[i-1].Seq, "delivery %d went back in the log", i)
	}
}

func TestFeedDeliversEveryMatchingEventInOrderThroughAFailingSlowAndVanishingReceiver(t *testing.T) {
	s, st := openLog(t)
	rec := newReceiver(t, "s3cret")
	hook := &subscriptions.Webhook{Subscription: "sub-1", URL: rec.URL(), Secret: []byte("s3cret"),
		Client: &http.Client{Timeout: 300 * time.Millisecond}}
	// From the beginning: the events already in the log come first.
	var ws []want
	for i := 0; i < 3; i++ {
		id, seq := publishMemory(t, s)
		ws = append(ws, want{id, seq})
		publishAlert(t, s) // not matching the filter
	}
	runFeed(t, newFeed(st, "sub-1", hook, subscriptions.Start{Seq: 1}, "ledger.memory.>"))
	rec.waitFor(3)

	phase := func(mode string, n int) {
		rec.setMode(mode)
		for i := 0; i < n; i++ {
			id, seq := publishMemory(t, s)
			ws = append(ws, want{id, seq})
			publishAlert(t, s)
		}
	}
	// Fails: nothing is delivered, the events wait in order.
	phase("fail", 3)
	require.Eventually(t, func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.failed >= 3 }, 30*time.Second, 10*time.Millisecond)
	require.Len(t, firstOfEach(rec.deliveries()), 3)
	// Answers slowly: past the client's timeout, so each attempt fails.
	phase("slow", 2)
	time.Sleep(700 * time.Millisecond)
	// Goes away altogether, and comes back on the same address.
	rec.stop()
	phase("ok", 3)
	time.Sleep(500 * time.Millisecond)
	require.Len(t, firstOfEach(rec.deliveries()), 3)
	rec.start(rec.addr)
	requireInOrder(t, ws, rec.waitFor(len(ws)))
	time.Sleep(200 * time.Millisecond)
	requireInOrder(t, ws, rec.deliveries())

	// The body is the event as stored, with its position and subject.
	var body struct {
		Subscription string          `json:"subscription"`
		Seq          uint64          `json:"seq"`
		Subject      string          `json:"subject"`
		Event        json.RawMessage `json:"event"`
	}
	d := rec.deliveries()[0]
	require.NoError(t, json.Unmarshal(d.Body, &body))
	require.Equal(t, "sub-1", body.Subscription)
	require.Equal(t, d.Seq, body.Seq)
	ev, err := eventstore.Decode(body.Event, body.Seq)
	require.NoError(t, err)
	require.Equal(t, d.ID, ev.ID)
	require.Equal(t, domain.EventMemoryCreated, d.Type)
	require.Equal(t, "ledger.memory."+ev.AggregateID, body.Subject)
}

func TestFeedResetDeliversTheBackfill(t *testing.T) {
	s, st := openLog(t)
	rec := newReceiver(t, "k")
	hook := &subscriptions.Webhook{Subscription: "sub-r", URL: rec.URL(), Secret: []byte("k")}
	var ws []want
	for i := 0; i < 5; i++ {
		id, seq := publishMemory(t, s)
		ws = append(ws, want{id, seq})
	}
	f := newFeed(st, "sub-r", hook, subscriptions.Start{Seq: 1})
	stop := runFeed(t, f)
	requireInOrder(t, ws, rec.waitFor(5))
	stop()

	// Back to the third event: it and the ones after it are delivered again, in order.
	require.NoError(t, f.Reset(t.Context(), subscriptions.Start{Seq: ws[2].seq}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	ds := rec.waitFor(8)
	requireInOrder(t, ws, ds[:5])
	requireInOrder(t, ws[2:], ds[5:])
	require.Eventually(t, func() bool { st := f.Status(t.Context()); return st.Lag == 0 && st.Position == ws[4].seq }, 10*time.Second, 10*time.Millisecond)

	// A reset to a time: from the first event at or after it.
	cancel()
	<-done
	mark := time.Now()
	time.Sleep(50 * time.Millisecond)
	id, seq := publishMemory(t, s)
	require.NoError(t, f.Reset(t.Context(), subscriptions.Start{Time: mark}))
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { f.Run(ctx2); close(done2) }()
	defer func() { cancel2(); <-done2 }()
	ds = rec.waitFor(9)
	require.Len(t, ds, 9)
	require.Equal(t, id, ds[8].ID)
	require.Equal(t, seq, ds[8].Seq)
}

func TestFeedPausedKeepsItsPlaceAndResumes(t *testing.T) {
	s, st := openLog(t)
	rec := newReceiver(t, "k")
	hook := &subscriptions.Webhook{Subscription: "sub-p", URL: rec.URL(), Secret: []byte("k")}
	// Created "now": events already in the log are not delivered.
	publishMemory(t, s)
	f := newFeed(st, "sub-p", hook, subscriptions.Start{})
	stop := runFeed(t, f)
	id, seq := publishMemory(t, s)
	ws := []want{{id, seq}}
	requireInOrder(t, ws, rec.waitFor(1))
	stop() // paused

	for i := 0; i < 4; i++ {
		id, seq := publishMemory(t, s)
		ws = append(ws, want{id, seq})
	}
	require.Eventually(t, func() bool { return f.Status(t.Context()).Lag == 4 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, rec.deliveries(), 1, "a paused feed delivers nothing")

	// Resumed by a new feed on the same consumer (as after a restart): from where it was.
	again := newFeed(st, "sub-p", hook, subscriptions.Start{Seq: 1})
	runFeed(t, again)
	ds := rec.waitFor(5)
	requireInOrder(t, ws, ds)
	require.Eventually(t, func() bool { return again.Status(t.Context()).Lag == 0 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, rec.deliveries(), 5, "nothing delivered twice")
}

func TestFeedFiltersByType(t *testing.T) {
	s, st := openLog(t)
	rec := newReceiver(t, "k")
	hook := &subscriptions.Webhook{Subscription: "sub-t", URL: rec.URL(), Secret: []byte("k")}
	f := newFeed(st, "sub-t", hook, subscriptions.Start{Seq: 1})
	f.Types = []string{domain.EventAlertRaised}
	var ws []want
	for i := 0; i < 3; i++ {
		publishMemory(t, s)
		id, seq := publishAlert(t, s)
		ws = append(ws, want{id, seq})
	}
	runFeed(t, f)
	requireInOrder(t, ws, rec.waitFor(3))
	require.Eventually(t, func() bool { st := f.Status(t.Context()); return st.Lag == 0 && st.Skipped == 3 }, 10*time.Second, 10*time.Millisecond)
}

func TestFeedGivesUpAfterRetryForAndKeepsOrder(t *testing.T) {
	s, st := openLog(t)
	var mu sync.Mutex
	var got []uint64
	type gaveUp struct {
		seq      uint64
		attempts int
	}
	var given []gaveUp
	var poison uint64
	f := &subscriptions.Feed{Stream: st, Name: "give-up", Start: subscriptions.Start{Seq: 1},
		Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, RetryFor: 300 * time.Millisecond,
		Deliver: func(ctx context.Context, m subscriptions.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if m.Seq == poison {
				return errors.New("refused")
			}
			got = append(got, m.Seq)
			return nil
		},
		GiveUp: func(ctx context.Context, m subscriptions.Message, attempts int, err error) {
			mu.Lock()
			given = append(given, gaveUp{m.Seq, attempts})
			mu.Unlock()
		}}
	var seqs []uint64
	for i := 0; i < 4; i++ {
		_, seq := publishMemory(t, s)
		seqs = append(seqs, seq)
	}
	poison = seqs[1]
	runFeed(t, f)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 }, 30*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []uint64{seqs[0], seqs[2], seqs[3]}, got)
	require.Len(t, given, 1)
	require.Equal(t, poison, given[0].seq)
	require.Greater(t, given[0].attempts, 3, "retried for the whole budget")
	status := f.Status(t.Context())
	require.Equal(t, "refused", status.LastError)
	require.Equal(t, poison, status.LastErrorSeq)
	require.False(t, status.Failing)
}

func TestFeedGivesUpAfterMaxAttemptsOrAPermanentError(t *testing.T) {
	s, st := openLog(t)
	var mu sync.Mutex
	tries := map[uint64]int{}
	given := map[uint64]int{}
	var seqs []uint64
	for i := 0; i < 3; i++ {
		_, seq := publishMemory(t, s)
		seqs = append(seqs, seq)
	}
	f := &subscriptions.Feed{Stream: st, Name: "attempts", Start: subscriptions.Start{Seq: 1},
		Backoff: time.Millisecond, MaxAttempts: 4,
		Deliver: func(ctx context.Context, m subscriptions.Message) error {
			mu.Lock()
			defer mu.Unlock()
			tries[m.Seq]++
			switch m.Seq {
			case seqs[0]:
				return errors.New("always failing")
			case seqs[1]:
				return subscriptions.PermanentError{Err: errors.New("refused for good")}
			}
			return nil
		},
		GiveUp: func(ctx context.Context, m subscriptions.Message, attempts int, err error) {
			mu.Lock()
			given[m.Seq] = attempts
			mu.Unlock()
		}}
	runFeed(t, f)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return tries[seqs[2]] == 1 }, 30*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[uint64]int{seqs[0]: 4, seqs[1]: 1}, given)
	require.Equal(t, 4, tries[seqs[0]])
}
