package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// subReceiver is a webhook receiver for subscriptions: it answers as its mode says (ok, fail
// with 503, or slow: past the client's timeout), can go away and come back on its address,
// and checks every delivery's signature as a receiver would.
type subReceiver struct {
	t      *testing.T
	secret []byte
	addr   string

	// describe, when set, says what the sender reports when a wait fails.
	describe func() string

	mu   sync.Mutex
	mode string
	srv  *http.Server
	got  []subDelivery
	hits int
}

// subDelivery is a delivery the receiver accepted.
type subDelivery struct {
	ID, Type, Subscription string
	Seq                    uint64
	Event                  map[string]any
	SigErr                 error
}

func newSubReceiver(t *testing.T, secret string) *subReceiver {
	r := &subReceiver{t: t, secret: []byte(secret), mode: "ok"}
	r.up("127.0.0.1:0")
	t.Cleanup(r.down)
	return r
}

func (r *subReceiver) URL() string { return "http://" + r.addr + "/hook" }

func (r *subReceiver) up(addr string) {
	var ln net.Listener
	var err error
	for range 50 {
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

func (r *subReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (r *subReceiver) setMode(m string) {
	r.mu.Lock()
	r.mode = m
	r.mu.Unlock()
}

func (r *subReceiver) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

func (r *subReceiver) serve(w http.ResponseWriter, q *http.Request) {
	body, _ := io.ReadAll(q.Body)
	r.mu.Lock()
	mode := r.mode
	r.hits++
	r.mu.Unlock()
	switch mode {
	case "fail":
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case "slow":
		select {
		case <-time.After(2 * time.Second):
		case <-q.Context().Done():
		}
		return
	}
	var v struct {
		Subscription string         `json:"subscription"`
		Seq          uint64         `json:"seq"`
		Event        map[string]any `json:"event"`
	}
	json.Unmarshal(body, &v)
	seq, _ := strconv.ParseUint(q.Header.Get(subscriptions.SeqHeader), 10, 64)
	d := subDelivery{ID: q.Header.Get(subscriptions.EventIDHeader), Type: q.Header.Get(subscriptions.EventTypeHeader),
		Subscription: v.Subscription, Seq: seq, Event: v.Event,
		SigErr: subscriptions.Verify(r.secret, body, q.Header.Get(subscriptions.SignatureHeader), time.Now(), subscriptions.DefaultTolerance)}
	if d.Seq != v.Seq || v.Event["id"] != d.ID {
		d.SigErr = io.ErrUnexpectedEOF // headers and body disagree
	}
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *subReceiver) deliveries() []subDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]subDelivery(nil), r.got...)
}

// firsts is the receiver's deliveries de-duplicated by event id, as a receiver does.
func (r *subReceiver) firsts() []subDelivery {
	seen := map[string]bool{}
	var out []subDelivery
	for _, d := range r.deliveries() {
		if !seen[d.ID] {
			seen[d.ID] = true
			out = append(out, d)
		}
	}
	return out
}

func (r *subReceiver) waitFirsts(n int) []subDelivery {
	r.t.Helper()
	if !assert.Eventually(r.t, func() bool { return len(r.firsts()) >= n }, 60*time.Second, 20*time.Millisecond) {
		var state string
		if r.describe != nil {
			state = r.describe()
		}
		require.FailNowf(r.t, "deliveries", "the receiver has %d of %d events (%d requests); %s", len(r.firsts()), n, r.requests(), state)
	}
	return r.firsts()
}

// describeDelivery says, for a failed wait, what the subscription and its consumer report,
// and the end of the ledger's log.
func describeDelivery(l *ledger, log *syncBuffer, id string) func() string {
	return func() string {
		v := l.subscription(id)
		tail := log.String()
		tail = tail[max(0, len(tail)-6000):]
		out := fmt.Sprintf("the log's end:\n%s\ndelivery %+v", tail, v.Delivery)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cons, err := l.Main.Store.JetStream().Consumer(ctx, eventstore.DefaultStream, subscriptions.ConsumerName(v.Subscription))
		if err != nil {
			return out + "; consumer: " + err.Error()
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return out + "; consumer info: " + err.Error()
		}
		return out + fmt.Sprintf("; consumer %s: delivered %+v, ack floor %+v, pending %d, ack pending %d, waiting %d, redelivered %d",
			info.Name, info.Delivered, info.AckFloor, info.NumPending, info.NumAckPending, info.NumWaiting, info.NumRedelivered)
	}
}

// requireSubDelivered requires ds to be exactly the events at seqs, in order, each signed.
func requireSubDelivered(t *testing.T, seqs []uint64, ds []subDelivery) {
	t.Helper()
	got := make([]uint64, len(ds))
	for i, d := range ds {
		got[i] = d.Seq
		require.NoError(t, d.SigErr, "delivery of %d", d.Seq)
	}
	require.Equal(t, seqs, got)
}

// subView is a subscription as the API answers it.
type subView struct {
	domain.Subscription
	Secret   string               `json:"secret"`
	Delivery subscriptions.Status `json:"delivery"`
}

func (l *ledger) subscription(id string) subView {
	l.t.Helper()
	var v subView
	l.expect(http.StatusOK, "GET", "/admin/subscriptions/"+id, nil).Decode(l.t, &v)
	return v
}

func withSubscriptionBackoff(l *ledger) {
	l.cfg.SubscriptionBackoff = 20 * time.Millisecond
	l.cfg.SubscriptionMaxBackoff = 200 * time.Millisecond
	l.cfg.SubscriptionTimeout = 300 * time.Millisecond
}

func TestSubscriptionDeliversEveryMatchingEventInOrderSigned(t *testing.T) {
	var log syncBuffer
	l := startLedger(t, withSubscriptionBackoff, withLog(&log))
	const secret = "a-secret-of-some-length"
	rec := newSubReceiver(t, secret)
	var seqs []uint64
	for range 3 {
		seqs = append(seqs, l.mem(map[string]any{"memory_type": "knowledge", "content": "before " + strconv.Itoa(len(seqs))}).Seq)
		l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"title": "not a memory"})
	}
	res := l.expect(http.StatusCreated, "POST", "/admin/subscriptions", map[string]any{"url": rec.URL(),
		"subjects": []string{"ledger.memory.>"}, "from": "beginning", "secret": secret, "description": "the test receiver"},
		"X-Actor", "ops-admin")
	var sub subView
	res.Decode(t, &sub)
	require.NotEmpty(t, sub.ID)
	rec.describe = describeDelivery(l, &log, sub.ID)
	require.Equal(t, "/admin/subscriptions/"+sub.ID, res.Header.Get("Location"))
	require.Empty(t, sub.Secret, "a secret given is never echoed")
	require.NotContains(t, string(res.Body), secret)
	require.Equal(t, domain.StatusSubscriptionActive, sub.Status)
	require.Equal(t, "ops-admin", sub.CreatedBy)
	require.Empty(t, sub.Delivery.Error, "the answer shows the delivery already started")
	require.Equal(t, []string{"ledger.memory.>"}, sub.Subjects)
	requireSubDelivered(t, seqs, rec.waitFirsts(3))
	require.Equal(t, sub.ID, rec.deliveries()[0].Subscription)
	require.Equal(t, domain.EventMemoryCreated, rec.deliveries()[0].Type)

	// The secret is in the log only sealed.
	evs, _, err := l.Main.Store.Load(t.Context(), "subscription", sub.ID)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	stored, err := eventstore.Encode(evs[0])
	require.NoError(t, err)
	require.Contains(t, string(stored), `"sealed_secret":"v1:`)
	require.NotContains(t, string(stored), secret)

	write := func(n int) {
		for range n {
			seqs = append(seqs, l.mem(map[string]any{"memory_type": "knowledge", "content": "fact " + strconv.Itoa(len(seqs))}).Seq)
			l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"title": "noise"})
		}
	}
	// The receiver fails, then answers slowly, then goes away; meanwhile events pile up.
	rec.setMode("fail")
	write(2)
	require.Eventually(t, func() bool { return rec.requests() >= 6 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { v := l.subscription(sub.ID); return v.Delivery.Failing && v.Delivery.LastError != "" }, 30*time.Second, 20*time.Millisecond)
	v := l.subscription(sub.ID)
	require.Contains(t, v.Delivery.LastError, "503")
	require.GreaterOrEqual(t, v.Delivery.Lag, uint64(2))
	rec.setMode("slow")
	write(2)
	time.Sleep(700 * time.Millisecond)
	rec.down()
	rec.setMode("ok")
	write(2)
	time.Sleep(500 * time.Millisecond)
	require.Len(t, rec.firsts(), 3, "nothing delivered while the receiver was failing, slow or away")

	// /health and /metrics say it is failing and how far behind.
	var h struct {
		Subscriptions map[string]subscriptions.Status `json:"subscriptions"`
	}
	l.expect(http.StatusOK, "GET", "/health", nil).Decode(t, &h)
	require.Contains(t, h.Subscriptions, sub.ID)
	require.Positive(t, h.Subscriptions[sub.ID].Lag)
	require.NotEmpty(t, h.Subscriptions[sub.ID].LastError)
	metrics := string(l.expect(http.StatusOK, "GET", "/metrics", nil).Body)
	require.Contains(t, metrics, `memledger_subscription_lag{subscription="`+sub.ID+`"}`)

	// Back on its address: every matching event, in log order, once each de-duplicated.
	rec.up(rec.addr)
	requireSubDelivered(t, seqs, rec.waitFirsts(len(seqs)))
	require.Eventually(t, func() bool { v := l.subscription(sub.ID); return v.Delivery.Lag == 0 && !v.Delivery.Failing }, 30*time.Second, 20*time.Millisecond)
	all := rec.deliveries()
	for i := 1; i < len(all); i++ {
		require.GreaterOrEqual(t, all[i].Seq, all[i-1].Seq, "never back in the log")
	}
	metrics = string(l.expect(http.StatusOK, "GET", "/metrics", nil).Body)
	require.Contains(t, metrics, `memledger_subscription_lag{subscription="`+sub.ID+`"} 0`)
}

func TestSubscriptionPauseResumeResetRemoveAndRestart(t *testing.T) {
	var log syncBuffer
	l := startLedger(t, withSubscriptionBackoff, withLog(&log))
	rec := newSubReceiver(t, "")
	// No secret given: memledger makes one and shows it once.
	var sub subView
	l.expect(http.StatusCreated, "POST", "/admin/subscriptions", map[string]any{"url": rec.URL(),
		"types": []string{"memory.promoted"}}).Decode(t, &sub)
	require.True(t, strings.HasPrefix(sub.Secret, "whsec_"), "secret %q", sub.Secret)
	rec.secret = []byte(sub.Secret)
	rec.describe = describeDelivery(l, &log, sub.ID)
	require.Equal(t, []string{"ledger.memory.>"}, sub.Subjects, "the types' kinds")
	require.Empty(t, l.subscription(sub.ID).Secret, "shown once")

	var promoted []uint64
	promote := func(n int) {
		for range n {
			m := l.mem(map[string]any{"memory_type": "knowledge", "content": "c " + strconv.Itoa(len(promoted)), "status": "candidate"})
			promoted = append(promoted, l.act("POST", "/memory/"+m.ID+"/promote", nil).Seq)
		}
	}
	promote(2)
	requireSubDelivered(t, promoted, rec.waitFirsts(2))

	// Paused: nothing is delivered, the lag shows; resumed: delivered in order.
	var p subView
	l.expect(http.StatusOK, "POST", "/admin/subscriptions/"+sub.ID+"/pause", map[string]any{"note": "receiver upgrade"}).Decode(t, &p)
	require.Equal(t, domain.StatusSubscriptionPaused, p.Status)
	requireProblem(t, l.do("POST", "/admin/subscriptions/"+sub.ID+"/pause", nil), http.StatusConflict, "", "paused")
	promote(2)
	require.Eventually(t, func() bool { return l.subscription(sub.ID).Delivery.Lag >= 4 }, 30*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	require.Len(t, rec.firsts(), 2)

	// A restart while paused: it stays paused, and keeps its place.
	l.restart()
	require.Equal(t, domain.StatusSubscriptionPaused, l.subscription(sub.ID).Status)
	time.Sleep(300 * time.Millisecond)
	require.Len(t, rec.firsts(), 2)
	l.expect(http.StatusOK, "POST", "/admin/subscriptions/"+sub.ID+"/resume", nil)
	requireSubDelivered(t, promoted, rec.waitFirsts(4))
	require.Len(t, rec.deliveries(), 4, "nothing delivered twice across the restart")

	// Reset to the second promotion: it and those after it come again, in order (a backfill).
	before := len(rec.deliveries())
	var r subView
	l.expect(http.StatusOK, "POST", "/admin/subscriptions/"+sub.ID+"/reset", map[string]any{"from": strconv.FormatUint(promoted[1], 10)}).Decode(t, &r)
	require.Greater(t, r.Generation, sub.Generation)
	require.Eventually(t, func() bool { return len(rec.deliveries()) >= before+3 }, 30*time.Second, 20*time.Millisecond)
	again := rec.deliveries()[before:]
	require.Len(t, again, 3)
	for i, d := range again {
		require.Equal(t, promoted[1+i], d.Seq)
		require.NoError(t, d.SigErr)
	}

	// Bad input is refused, naming the problem.
	requireProblem(t, l.do("POST", "/admin/subscriptions/"+sub.ID+"/reset", map[string]any{"from": "yesterday"}), http.StatusBadRequest, "from")
	requireProblem(t, l.do("POST", "/admin/subscriptions/"+sub.ID+"/reset", map[string]any{"from": "999999"}), http.StatusBadRequest, "from", "beyond the log")
	requireProblem(t, l.do("POST", "/admin/subscriptions", map[string]any{"url": rec.URL(), "subjects": []string{"$JS.>"}}), http.StatusBadRequest, "subjects")
	requireProblem(t, l.do("POST", "/admin/subscriptions", map[string]any{"url": rec.URL(), "types": []string{"memory.nope"}}), http.StatusBadRequest, "types")
	requireProblem(t, l.do("POST", "/admin/subscriptions", map[string]any{"url": "mailto:x"}), http.StatusBadRequest, "url")
	requireProblem(t, l.do("POST", "/admin/subscriptions", map[string]any{"url": rec.URL(), "secret": "short"}), http.StatusBadRequest, "secret")
	requireProblem(t, l.do("POST", "/admin/subscriptions", map[string]any{"url": rec.URL(), "colour": "red"}), http.StatusBadRequest, "colour")
	requireProblem(t, l.do("POST", "/admin/subscriptions/nope/pause", nil), http.StatusNotFound, "")
	requireProblem(t, l.do("GET", "/admin/subscriptions/nope", nil), http.StatusNotFound, "")

	// Every admin write is an event of the log, with its actor and note.
	var list struct {
		Subscriptions []subView `json:"subscriptions"`
	}
	l.expect(http.StatusOK, "GET", "/admin/subscriptions", nil).Decode(t, &list)
	require.Len(t, list.Subscriptions, 1)

	// Removed: nothing more is delivered, and it is listed only when asked for.
	l.expect(http.StatusOK, "DELETE", "/admin/subscriptions/"+sub.ID, nil)
	requireProblem(t, l.do("POST", "/admin/subscriptions/"+sub.ID+"/resume", nil), http.StatusNotFound, "")
	n := len(rec.deliveries())
	promote(1)
	time.Sleep(500 * time.Millisecond)
	require.Len(t, rec.deliveries(), n)
	l.expect(http.StatusOK, "GET", "/admin/subscriptions", nil).Decode(t, &list)
	require.Empty(t, list.Subscriptions)
	l.expect(http.StatusOK, "GET", "/admin/subscriptions?include_removed=true", nil).Decode(t, &list)
	require.Len(t, list.Subscriptions, 1)
	require.Equal(t, domain.StatusSubscriptionRemoved, list.Subscriptions[0].Status)
}

func TestSubscriptionsCommand(t *testing.T) {
	var log syncBuffer
	l := startLedger(t, withSubscriptionBackoff, withLog(&log))
	rec := newSubReceiver(t, "cli-secret-0123456789")
	run := func(args ...string) (string, int) {
		var out, errOut bytes.Buffer
		code := app.Run(t.Context(), append([]string{"subscriptions"}, append(args, "--addr", l.Main.Addr())...), &out, &errOut)
		return out.String() + errOut.String(), code
	}
	out, code := run("add", "--url", rec.URL(), "--subject", "ledger.alert.>", "--from", "beginning", "--secret", "cli-secret-0123456789")
	require.Equal(t, 0, code, out)
	var sub subView
	require.NoError(t, json.Unmarshal([]byte(out), &sub), out)
	rec.describe = describeDelivery(l, &log, sub.ID)
	a := l.expect(http.StatusCreated, "POST", "/admin/alerts", map[string]any{"title": "via cli"}).JSON(t)
	d := rec.waitFirsts(1)[0]
	require.Equal(t, a["id"], d.ID)
	require.NoError(t, d.SigErr)

	out, code = run("list")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, sub.ID+" active")
	out, code = run("pause", sub.ID)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, `"status": "paused"`)
	out, code = run("reset", sub.ID, "--from", "beginning")
	require.Equal(t, 0, code, out)
	out, code = run("resume", sub.ID)
	require.Equal(t, 0, code, out)
	require.Eventually(t, func() bool { return len(rec.deliveries()) >= 2 }, 30*time.Second, 20*time.Millisecond)
	out, code = run("pause", sub.ID)
	require.Equal(t, 0, code, out)
	out, code = run("pause", sub.ID)
	require.Equal(t, 1, code)
	require.Contains(t, out, "409")
	out, code = run("remove", sub.ID)
	require.Equal(t, 0, code, out)
	out, code = run("list")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "no subscriptions")
	_, code = run("pause")
	require.Equal(t, 2, code)
}
