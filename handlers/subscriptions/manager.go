package subscriptions

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/nats-io/nats.go/jetstream"
)

// Lister reads the subscriptions (the subscriptions projection).
type Lister interface {
	Subscriptions() ([]domain.Subscription, error)
}

// consumerPrefix starts the name of every subscription's durable consumer:
// sub-<id>-<generation>.
const consumerPrefix = "sub-"

// restartPause is how long a feed whose consumer went away waits before it is started again.
const restartPause = 5 * time.Second

// ConsumerName is the durable consumer of subscription s at its current generation.
func ConsumerName(s domain.Subscription) string {
	return consumerPrefix + s.ID + "-" + strconv.FormatUint(s.Generation, 10)
}

// Manager runs one Feed per active subscription and keeps them as the subscriptions
// projection says: it starts a registered one, stops a paused one (its consumer keeps its
// position), moves a reset one to a new consumer at its new start (deleting the old) and
// deletes a removed one's consumer. Every memledger process on one log runs its own Manager;
// they share the consumers, and each event is still delivered in order, one at a time.
type Manager struct {
	Stream  jetstream.Stream
	List    Lister
	Keyring *Keyring
	// Client carries the deliveries (its Timeout bounds one).
	Client *http.Client
	// Backoff and MaxBackoff are the feeds' retry waits.
	Backoff, MaxBackoff time.Duration
	// Interval is how often the projection is read again (a Notify reads it at once).
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger

	// reconciling makes one Reconcile at a time (Run's, and a caller's after a write).
	reconciling sync.Mutex
	mu          sync.Mutex
	running     map[string]*running
	errs        map[string]string
	seen        map[string]string // by id: the generation (and removal) whose stale consumers were cleaned
	wake        chan struct{}
}

type running struct {
	sub    domain.Subscription
	feed   *Feed
	cancel context.CancelFunc
	done   chan struct{}
}

// Notify makes the manager read the subscriptions again now (after a write to them).
func (m *Manager) Notify() {
	m.init()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) init() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.wake != nil {
		return
	}
	m.wake = make(chan struct{}, 1)
	m.running, m.errs, m.seen = map[string]*running{}, map[string]string{}, map[string]string{}
	if m.Interval <= 0 {
		m.Interval = time.Second
	}
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Client == nil {
		m.Client = &http.Client{Timeout: 10 * time.Second}
	}
}

// Run keeps the feeds as the subscriptions say until ctx is done, then stops them all.
func (m *Manager) Run(ctx context.Context) error {
	m.init()
	defer m.stopAll()
	t := time.NewTicker(m.Interval)
	defer t.Stop()
	for {
		if err := m.Reconcile(ctx); err != nil && ctx.Err() == nil {
			m.Logger.Warn("subscriptions: reconcile failed; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-m.wake:
		}
	}
}

// Reconcile brings the feeds to what the subscriptions say, once. A caller that has just
// changed a subscription calls it to have its answer show the new state.
func (m *Manager) Reconcile(ctx context.Context) error {
	m.init()
	m.reconciling.Lock()
	defer m.reconciling.Unlock()
	subs, err := m.List.Subscriptions()
	if err != nil {
		return fmt.Errorf("read subscriptions: %w", err)
	}
	for _, s := range subs {
		m.reconcileOne(ctx, s)
	}
	return nil
}

func (m *Manager) reconcileOne(ctx context.Context, s domain.Subscription) {
	m.mu.Lock()
	r := m.running[s.ID]
	cleaned := m.seen[s.ID]
	m.mu.Unlock()
	mark := ConsumerName(s)
	if s.Status == domain.StatusSubscriptionRemoved {
		mark = "removed"
	}
	if r != nil && (r.sub.Generation != s.Generation || s.Status != domain.StatusSubscriptionActive) {
		m.stop(s.ID)
		r = nil
	}
	if cleaned != mark {
		// The consumers of earlier generations (a reset, or a removal, seen first here).
		newer, err := m.deleteStale(ctx, s)
		if err != nil {
			m.setErr(s.ID, err.Error())
			return
		}
		if newer != "" {
			// Another instance on the log has applied a reset this one's projections have
			// not applied yet: the newer consumer delivers, and this instance neither deletes
			// it nor makes the old one again (which would deliver the old position twice).
			m.setErr(s.ID, fmt.Sprintf("a later position of this subscription (consumer %s) is delivering; this instance has not applied it yet", newer))
			return
		}
		m.mu.Lock()
		m.seen[s.ID] = mark
		m.mu.Unlock()
	}
	switch s.Status {
	case domain.StatusSubscriptionRemoved:
		m.mu.Lock()
		delete(m.errs, s.ID)
		delete(m.running, "paused:"+s.ID)
		m.mu.Unlock()
		return
	case domain.StatusSubscriptionPaused:
		// Its consumer is kept (and made, for a subscription paused before this process saw
		// it), so that its lag shows; nothing is delivered.
		m.mu.Lock()
		p, has := m.running["paused:"+s.ID]
		m.mu.Unlock()
		if !has || p.sub.Generation != s.Generation {
			f := m.feed(s, nil)
			if err := f.Open(ctx); err != nil {
				m.setErr(s.ID, err.Error())
				return
			}
			m.mu.Lock()
			m.running["paused:"+s.ID] = &running{sub: s, feed: f}
			m.mu.Unlock()
		}
		return
	}
	if r != nil {
		return
	}
	m.mu.Lock()
	delete(m.running, "paused:"+s.ID)
	m.mu.Unlock()
	secret, err := m.Keyring.Open(s.ID, s.SealedSecret)
	if err != nil {
		m.setErr(s.ID, fmt.Sprintf("cannot deliver: %v", err))
		return
	}
	hook := &Webhook{Subscription: s.ID, URL: s.URL, Secret: secret, Client: m.Client, Now: m.Now}
	f := m.feed(s, hook.Deliver)
	if err := f.Open(ctx); err != nil {
		m.setErr(s.ID, err.Error())
		return
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r = &running{sub: s, feed: f, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	m.running[s.ID] = r
	delete(m.errs, s.ID)
	m.mu.Unlock()
	m.Logger.Info("subscription delivering", "subscription", s.ID, "url", s.URL, "consumer", f.Name)
	go func() {
		defer close(r.done)
		if err := f.Run(rctx); rctx.Err() == nil {
			// The consumer went away under it (a reset or removal by another process, which this
			// one's projection will show in a moment): the feed is started again as the
			// subscriptions then say, after a pause long enough for them to say it.
			m.Logger.Warn("subscription's consumer went away; starting it again shortly", "subscription", s.ID, "err", err)
			select {
			case <-rctx.Done():
				return
			case <-time.After(restartPause):
			}
			m.mu.Lock()
			if m.running[s.ID] == r {
				delete(m.running, s.ID)
				delete(m.seen, s.ID)
			}
			m.mu.Unlock()
		}
	}()
}

func (m *Manager) feed(s domain.Subscription, deliver Deliverer) *Feed {
	return &Feed{Stream: m.Stream, Name: ConsumerName(s), Description: "memledger subscription " + s.ID + " to " + s.URL,
		Subjects: s.Subjects, Types: s.Types, Start: Start{Seq: s.StartSeq, Time: ptrTime(s.StartTime)},
		Deliver: deliver, Backoff: m.Backoff, MaxBackoff: m.MaxBackoff, Logger: m.Logger.With("subscription", s.ID)}
}

func ptrTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// deleteStale deletes the consumers of s of earlier generations than its own (all of them
// once s is removed). A consumer of a later generation, made by another instance whose
// projections are ahead, is kept and named (newer).
func (m *Manager) deleteStale(ctx context.Context, s domain.Subscription) (newer string, err error) {
	removed := s.Status == domain.StatusSubscriptionRemoved
	prefix := consumerPrefix + s.ID + "-"
	names := m.Stream.ConsumerNames(ctx)
	var stale []string
	for name := range names.Name() {
		gen, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		g, perr := strconv.ParseUint(gen, 10, 64)
		switch {
		case removed || (perr == nil && g < s.Generation):
			// A removal is final: every consumer of it goes, whatever its generation.
			stale = append(stale, name)
		case perr == nil && g > s.Generation:
			newer = name
		}
	}
	if err := names.Err(); err != nil {
		return "", fmt.Errorf("list consumers: %w", err)
	}
	if newer != "" {
		return newer, nil
	}
	for _, name := range stale {
		if err := (&Feed{Stream: m.Stream, Name: name}).Delete(ctx); err != nil {
			return "", err
		}
		m.Logger.Info("subscription: consumer of an earlier position deleted", "subscription", s.ID, "consumer", name)
	}
	return "", nil
}

func (m *Manager) setErr(id, msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.errs[id] != msg {
		m.Logger.Error("subscription cannot run", "subscription", id, "err", msg)
	}
	m.errs[id] = msg
}

func (m *Manager) stop(id string) {
	m.mu.Lock()
	r := m.running[id]
	delete(m.running, id)
	m.mu.Unlock()
	if r != nil && r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	ids := make([]string, 0, len(m.running))
	for id := range m.running {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.stop(id)
	}
}

// SubscriptionStatus is what memledger says of one subscription's delivery.
type SubscriptionStatus struct {
	domain.Subscription
	// Delivery is the feed's state: position, lag, deliveries, last error.
	Delivery Status `json:"delivery"`
}

// Status returns the delivery state of subscription s, as this process sees it.
func (m *Manager) Status(ctx context.Context, s domain.Subscription) Status {
	m.init()
	m.mu.Lock()
	r := m.running[s.ID]
	if r == nil {
		r = m.running["paused:"+s.ID]
	}
	errMsg := m.errs[s.ID]
	m.mu.Unlock()
	var st Status
	switch {
	case s.Status == domain.StatusSubscriptionRemoved:
		return st
	case r != nil && r.sub.Generation == s.Generation:
		st = r.feed.Status(ctx)
	default:
		st.Error = "not started yet"
	}
	if errMsg != "" {
		st.Error = errMsg
	}
	return st
}
