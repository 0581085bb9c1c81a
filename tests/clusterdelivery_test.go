package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore/eventstoretest"
	"github.com/memledger/memledger/handlers/subscriptions"
)

// instanceHeader names, on a webhook request, the test instance that sent it.
const instanceHeader = "X-Test-Instance"

// instanceTagged sends a webhook request with the header naming instance i.
type instanceTagged int

func (i instanceTagged) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(instanceHeader, strconv.Itoa(int(i)))
	return baseTransport.RoundTrip(r)
}

// Three instances on one log share the alert webhook sink's consumer and a webhook
// subscription's: each alert and each event is delivered once by the three, in log order, and
// when the instance delivering dies the others go on delivering.
func TestClusterDeliversOnce(t *testing.T) {
	url := eventstoretest.StartServer(t)
	hook := newHookServer(t, hookOK)
	key := filepath.Join(t.TempDir(), "subscription-secrets.key")
	var nodes []*ledger
	for i := range 3 {
		opts := []func(*ledger){withWebhook(hook.URL+"/alerts", 5), withWebhookTransport(instanceTagged(i)), withSubscriptionBackoff,
			withConfig(func(c *app.Config) { c.NatsURL, c.SubscriptionKeyFile = url, key })}
		if i > 0 {
			dir := joinDir(t, nodes[0])
			opts = append(opts, withConfig(func(c *app.Config) { c.Data = dir }))
		}
		nodes = append(nodes, startLedger(t, opts...))
	}
	nodes[0].expect(http.StatusCreated, "POST", "/admin/subscriptions", map[string]any{"url": hook.URL + "/events",
		"subjects": []string{"ledger.memory.>"}, "from": "beginning", "secret": "a-secret-of-some-length"})

	// delivered are the ids delivered to path, in the order received, and the instances that
	// delivered them.
	delivered := func(path string) ([]string, []string) {
		var ids, from []string
		for _, r := range hook.delivered() {
			if r.Path != path {
				continue
			}
			id := r.Header.Get(subscriptions.EventIDHeader)
			if path == "/alerts" {
				var a domain.Alert
				require.NoError(t, json.Unmarshal(r.Body, &a))
				id = a.ID
			}
			ids, from = append(ids, id), append(from, r.Header.Get(instanceHeader))
		}
		return ids, from
	}
	var alerts, events []string
	// write raises an alert and creates a memory on each running instance in turn, and waits
	// until each was delivered, and once.
	write := func(round int, live ...*ledger) []string {
		for i, l := range live {
			alerts = append(alerts, alertRaise(t, l, map[string]any{"title": fmt.Sprintf("round %d, instance %d", round, i)}).ID)
			m := l.mem(map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("round %d on instance %d", round, i)})
			events = append(events, l.auditOf(m.ID)[0].EventID)
		}
		require.Eventually(t, func() bool {
			a, _ := delivered("/alerts")
			e, _ := delivered("/events")
			return len(a) >= len(alerts) && len(e) >= len(events)
		}, 30*time.Second, 10*time.Millisecond, "every alert and event delivered")
		// A moment more, for a second delivery to show.
		time.Sleep(300 * time.Millisecond)
		a, aFrom := delivered("/alerts")
		e, eFrom := delivered("/events")
		require.Equal(t, alerts, a, "each alert delivered once by the cluster, in log order")
		require.Equal(t, events, e, "each event delivered once by the cluster, in log order")
		t.Logf("round %d: alerts delivered by instances %v, events by %v", round, aFrom, eFrom)
		return aFrom
	}
	from := write(1, nodes...)
	for round := 2; round <= 3; round++ {
		from = write(round, nodes...)
	}

	// The instance that delivered the last alert dies; the others deliver what follows.
	dead, err := strconv.Atoi(from[len(from)-1])
	require.NoError(t, err)
	crashLedger(nodes[dead])
	var live []*ledger
	for i, l := range nodes {
		if i != dead {
			live = append(live, l)
		}
	}
	before := len(alerts)
	from = write(4, live...)
	for _, f := range from[before:] {
		require.NotEqual(t, strconv.Itoa(dead), f, "delivered by the instance that died")
	}
}

// A subscription removed on one instance while another was stopped is not delivered again by
// the other when it starts: its manager waits until its projections have caught up with the
// log (and so with the removal) before it acts on the subscriptions they hold.
func TestClusterSubscriptionRemovedWhileAnInstanceWasDown(t *testing.T) {
	url := eventstoretest.StartServer(t)
	hook := newHookServer(t, hookOK)
	key := filepath.Join(t.TempDir(), "subscription-secrets.key")
	a := startLedger(t, withSubscriptionBackoff, withConfig(func(c *app.Config) { c.NatsURL, c.SubscriptionKeyFile = url, key }))
	dir := joinDir(t, a)
	hold, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	b := startLedger(t, withSubscriptionBackoff, withConfig(func(c *app.Config) { c.NatsURL, c.SubscriptionKeyFile, c.Data = url, key, dir }))
	res := a.expect(http.StatusCreated, "POST", "/admin/subscriptions", map[string]any{"url": hook.URL + "/events",
		"subjects": []string{"ledger.memory.>"}, "from": "beginning", "secret": "a-secret-of-some-length"})
	id := res.JSON(t)["id"].(string)
	a.mem(map[string]any{"memory_type": "knowledge", "content": "delivered once"})
	require.Eventually(t, func() bool { return len(hook.delivered()) == 1 }, 30*time.Second, 10*time.Millisecond)

	b.stop()
	a.expect(http.StatusOK, "DELETE", "/admin/subscriptions/"+id, nil)
	// b starts with its projections held before they apply the removal.
	b.projectionsHook = func([]domain.Event) error {
		if held.CompareAndSwap(false, true) {
			close(hold)
			<-release
		}
		return nil
	}
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open) // before b's own cleanup stops it, should the test fail while held
	b.start()
	<-hold
	time.Sleep(time.Second) // several of the manager's reconcile intervals, were it running
	require.Equal(t, 1, len(hook.delivered()), "nothing delivered from projections that have not seen the removal")
	open()
	require.NoError(t, b.Main.Runner.WaitFor(t.Context(), b.Main.Runner.CatchUpTo))
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, 1, len(hook.delivered()), "the removed subscription is not delivered again")
}

// heldMarker, in a webhook request's body, makes the first instance that sends it to a path
// hold it (see holdingTransport).
const heldMarker = "held-in-flight"

// holdingTransport sends instance i's webhook requests tagged with i, except that the first
// instance to send a request whose body holds heldMarker to a given path keeps it in flight,
// unanswered, until its context ends (the instance dies); the others' go through.
type holdingTransport struct {
	i int
	h *deliveryHolds
}

// deliveryHolds are the instances holding a request, by path.
type deliveryHolds struct {
	mu      sync.Mutex
	holders map[string]int
	held    chan string
}

func (t holdingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	if bytes.Contains(body, []byte(heldMarker)) {
		t.h.mu.Lock()
		holder, ok := t.h.holders[r.URL.Path]
		if !ok {
			holder = t.i
			t.h.holders[r.URL.Path] = holder
			t.h.held <- r.URL.Path
		}
		t.h.mu.Unlock()
		if holder == t.i {
			<-r.Context().Done()
			return nil, r.Context().Err()
		}
	}
	return instanceTagged(t.i).RoundTrip(r)
}

// The instance delivering an alert (and the one delivering a subscribed event) dies with its
// delivery in flight, unacknowledged: another instance delivers it once the consumer's ack
// wait has passed since the dead one's last sign of life (not the 30 s it was), then what
// followed, in order. The dead instance's request was never answered, so here each is
// delivered once; had it reached the receiver, it would come twice, with the same id.
func TestClusterDeliveryFailsOverFromADeadInstance(t *testing.T) {
	url := eventstoretest.StartServer(t)
	hook := newHookServer(t, hookOK)
	key := filepath.Join(t.TempDir(), "subscription-secrets.key")
	holds := &deliveryHolds{holders: map[string]int{}, held: make(chan string, 2)}
	var nodes []*ledger
	for i := range 3 {
		opts := []func(*ledger){withWebhook(hook.URL+"/alerts", 0), withWebhookTransport(holdingTransport{i: i, h: holds}),
			withSubscriptionBackoff, withConfig(func(c *app.Config) {
				c.NatsURL, c.SubscriptionKeyFile = url, key
				c.SubscriptionTimeout = time.Minute // the held request is not cut short
			})}
		if i > 0 {
			dir := joinDir(t, nodes[0])
			opts = append(opts, withConfig(func(c *app.Config) { c.Data = dir }))
		}
		nodes = append(nodes, startLedger(t, opts...))
	}
	nodes[0].expect(http.StatusCreated, "POST", "/admin/subscriptions", map[string]any{"url": hook.URL + "/events",
		"subjects": []string{"ledger.memory.>"}, "from": "beginning", "secret": "a-secret-of-some-length"})

	var alerts, events []string
	raise := func(l *ledger, what string) {
		alerts = append(alerts, alertRaise(t, l, map[string]any{"title": what}).ID)
		m := l.mem(map[string]any{"memory_type": "knowledge", "content": what})
		events = append(events, l.auditOf(m.ID)[0].EventID)
	}
	raise(nodes[0], "before")
	require.Eventually(t, func() bool { return len(hook.delivered()) == 2 }, 30*time.Second, 10*time.Millisecond)

	raise(nodes[0], heldMarker)
	dead := map[int]bool{}
	for range 2 {
		select {
		case path := <-holds.held:
			holds.mu.Lock()
			dead[holds.holders[path]] = true
			holds.mu.Unlock()
		case <-time.After(30 * time.Second):
			t.Fatal("the held deliveries did not begin")
		}
	}
	var survivor *ledger
	for i, l := range nodes {
		if !dead[i] {
			survivor = l
		}
	}
	// Behind the held ones, in the consumers' order.
	raise(survivor, "after 1")
	raise(survivor, "after 2")
	time.Sleep(500 * time.Millisecond)
	require.Len(t, hook.delivered(), 2, "nothing delivered past an unacknowledged delivery")

	// Both at once: a crash closes the instance's connection first, then waits for what it was
	// doing (here the held request, which ends then).
	killed := time.Now()
	var wg sync.WaitGroup
	for i := range dead {
		wg.Go(func() { crashLedger(nodes[i]) })
	}
	wg.Wait()
	delivered := func(path string) []string {
		var ids []string
		for _, r := range hook.delivered() {
			if r.Path != path {
				continue
			}
			id := r.Header.Get(subscriptions.EventIDHeader)
			if path == "/alerts" {
				var a domain.Alert
				require.NoError(t, json.Unmarshal(r.Body, &a))
				id = a.ID
			}
			ids = append(ids, id)
		}
		// At least once: a delivery made again (a survivor starved past the ack wait on a
		// loaded machine) comes right after the first, with the same id.
		return slices.Compact(ids)
	}
	// Bounded well under the 30 s ack wait the consumers had.
	require.Eventually(t, func() bool {
		return len(delivered("/alerts")) >= len(alerts) && len(delivered("/events")) >= len(events)
	}, 20*time.Second, 10*time.Millisecond, "the held alert and event delivered by another instance")
	t.Logf("delivered by another instance %v after the kill", time.Since(killed).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, alerts, delivered("/alerts"), "each alert, in log order (a repeat only right after itself)")
	require.Equal(t, events, delivered("/events"), "each event, in log order (a repeat only right after itself)")
	for _, r := range hook.delivered() {
		n, err := strconv.Atoi(r.Header.Get(instanceHeader))
		require.NoError(t, err)
		if bytes.Contains(r.Body, []byte(heldMarker)) {
			require.False(t, dead[n], "the held delivery was made by the instance that died")
		}
	}
}
