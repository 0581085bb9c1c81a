// Package subscriptions delivers the log's events to receivers outside memledger: each
// subscriber reads from a durable JetStream consumer of its own, one event at a time and in
// log order, retries a failed delivery with backoff while keeping its place, and signs what it
// sends. The admin-registered webhook subscriptions and the alert webhook are its users.
package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Start is where a new durable consumer begins reading the log: at a sequence, at the first
// event at or after a time, or (both zero) with the events appended after its creation.
type Start struct {
	Seq  uint64
	Time time.Time
}

// Message is one event handed to a Deliverer.
type Message struct {
	// Seq is the event's position in the log.
	Seq uint64
	// Subject is the event's subject (ledger.<kind>.<aggregate id>).
	Subject string
	// Type and ID are the event's stored type name and id (read from the envelope).
	Type, ID string
	// Data is the event exactly as stored.
	Data []byte
	// Attempt counts the deliveries of this event by this process, from 1.
	Attempt int
}

// Deliverer delivers one event. An error makes the feed try again after a backoff; the feed
// does not move past the event until it is delivered (or, with RetryFor, given up on).
type Deliverer func(ctx context.Context, m Message) error

// Defaults of a Feed.
const (
	DefaultBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultAckWait is how long the server waits for an acknowledgement before it offers the
	// event again. A feed still working on an event (a slow delivery, a retry's backoff)
	// tells it so every AckWait/5, so that only a feed that died or was cut off lets it pass:
	// the event is then offered to another instance pulling from the same consumer, that long
	// after the last sign of life of the one that had it.
	DefaultAckWait = 5 * time.Second
	// shutdownGrace is how long a delivery under way may go on after the feed is stopped.
	shutdownGrace = 5 * time.Second
)

// Feed keeps one durable consumer of the log and delivers its events one at a time, in log
// order: the consumer has at most one unacknowledged event, and an event is acknowledged only
// once delivered. Set its fields, then call Open and Run. The consumer's position survives a
// restart; Start only matters when Open creates the consumer.
type Feed struct {
	Stream jetstream.Stream
	// Name is the durable consumer's name.
	Name string
	// Description is stored with the consumer.
	Description string
	// Subjects filter the events (NATS wildcards); empty reads every subject.
	Subjects []string
	// Types, when set, are the event types delivered; others are acknowledged and skipped.
	Types []string
	Start Start
	// Deliver is called for each event.
	Deliver Deliverer
	// Backoff is the wait after the first failed attempt, doubled after each, up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// RetryFor, when not zero, bounds how long an event is retried: after it, GiveUp is called
	// and the feed moves on. Zero retries until delivered.
	RetryFor time.Duration
	// MaxAttempts, when not zero, bounds how often an event is tried before GiveUp.
	MaxAttempts int
	// GiveUp is told of an event the feed gave up on (RetryFor passed, MaxAttempts made, or a
	// PermanentError).
	GiveUp  func(ctx context.Context, m Message, attempts int, err error)
	AckWait time.Duration
	Logger  *slog.Logger

	mu         sync.Mutex
	cons       jetstream.Consumer
	delivered  uint64
	skipped    uint64
	lastSeq    uint64
	lastErr    string
	lastErrSeq uint64
	lastErrAt  time.Time
	failing    bool
}

// PermanentError is a delivery failure that retrying cannot mend: the feed gives up on the
// event at once (GiveUp is called) instead of retrying it.
type PermanentError struct{ Err error }

// Error implements error.
func (e PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e PermanentError) Unwrap() error { return e.Err }

// Open finds the feed's consumer, or creates it at Start. A consumer that exists keeps its
// position (and its start); its filter is brought to Subjects.
func (f *Feed) Open(ctx context.Context) error {
	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	if f.Backoff <= 0 {
		f.Backoff = DefaultBackoff
	}
	if f.MaxBackoff < f.Backoff {
		f.MaxBackoff = max(f.Backoff, DefaultMaxBackoff)
	}
	if f.AckWait <= 0 {
		f.AckWait = DefaultAckWait
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       f.Name,
		Description:   f.Description,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       f.AckWait,
		MaxAckPending: 1,
		MaxDeliver:    -1,
	}
	switch len(f.Subjects) {
	case 0:
	case 1:
		cfg.FilterSubject = f.Subjects[0]
	default:
		cfg.FilterSubjects = f.Subjects
	}
	cons, err := f.Stream.Consumer(ctx, f.Name)
	switch {
	case err == nil:
		info := cons.CachedInfo()
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = info.Config.DeliverPolicy, info.Config.OptStartSeq, info.Config.OptStartTime
		cons, err = f.Stream.UpdateConsumer(ctx, cfg)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		switch {
		case f.Start.Seq > 0:
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.Start.Seq
		case !f.Start.Time.IsZero():
			t := f.Start.Time.UTC()
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
		default:
			cfg.DeliverPolicy = jetstream.DeliverNewPolicy
		}
		cons, err = f.Stream.CreateConsumer(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", f.Name, err)
	}
	f.mu.Lock()
	f.cons = cons
	f.mu.Unlock()
	return nil
}

// Reset moves the feed to start: its consumer is deleted and created again there (the events
// from start on are delivered again, a backfill). The feed must not be running.
func (f *Feed) Reset(ctx context.Context, start Start) error {
	if err := f.Delete(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	f.cons, f.lastSeq, f.failing = nil, 0, false
	f.mu.Unlock()
	f.Start = start
	return f.Open(ctx)
}

// Delete removes the feed's consumer (and with it its position); a consumer that does not
// exist is not an error.
func (f *Feed) Delete(ctx context.Context) error {
	err := f.Stream.DeleteConsumer(ctx, f.Name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer %s: %w", f.Name, err)
	}
	return nil
}

// Run delivers events until ctx is done, and then returns ctx's error, or until its consumer
// is deleted (by a reset or removal in another process), and then returns that error. A delivery under way
// when ctx ends gets a moment to finish; an event it did not deliver is handed back and is the
// first delivered by the next Run.
func (f *Feed) Run(ctx context.Context) error {
	f.mu.Lock()
	cons := f.cons
	f.mu.Unlock()
	if cons == nil {
		return fmt.Errorf("feed %s: Run before Open", f.Name)
	}
	for {
		err := f.consume(ctx, cons)
		if !errors.Is(err, errStalled) {
			return err
		}
		f.Logger.Warn("feed: events wait on the server but none arrived; pulling anew", "feed", f.Name,
			"waits", feedStallWaits)
	}
}

// errStalled ends a feed's consume: events waited on the server while none arrived.
var errStalled = errors.New("events wait but none arrive")

// consume delivers the events of one pull iterator on cons; see Run.
func (f *Feed) consume(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(1), jetstream.PullHeartbeat(feedHeartbeat))
	if err != nil {
		return fmt.Errorf("feed %s: %w", f.Name, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	idle, probe := 0, feedStallWaits
	for {
		// Next gives up after feedWait and is called again. Each call checks that a pull
		// request is out: nats.go can skip the request for the next event when the event before
		// came back before its own request was marked as sent (one event at a time makes this
		// likely). A request the server lost (its consumer's server died) shows as two missed
		// heartbeats within one call, which makes the iterator send a new one.
		msg, err := it.Next(jetstream.NextMaxWait(feedWait))
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			if errors.Is(err, nats.ErrTimeout) {
				// Nothing for feedStallWaits waits in a row while the consumer holds events
				// not yet delivered and none unacknowledged: the iterator is made again. An
				// idle feed asks the server less and less often (up to every feedStallWaitsMax
				// waits).
				if idle++; idle == probe {
					if f.waiting(ctx, cons) {
						return errStalled
					}
					idle, probe = 0, min(2*probe, feedStallWaitsMax)
				}
				continue
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				f.Logger.Debug("feed: no heartbeat from the server; asking again", "feed", f.Name)
				continue
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				// Deleted under it (a reset or removal elsewhere): the owner opens it again.
				return fmt.Errorf("feed %s: %w", f.Name, err)
			}
			f.Logger.Warn("feed: reading the log failed", "feed", f.Name, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		idle, probe = 0, feedStallWaits
		f.handle(ctx, msg)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// waiting tells whether cons holds events for the feed that it has not delivered while none
// is out unacknowledged: the server could deliver the next now.
func (f *Feed) waiting(ctx context.Context, cons jetstream.Consumer) bool {
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := cons.Info(ictx)
	if err != nil {
		return false
	}
	if info.NumPending > 0 && info.NumAckPending == 0 {
		f.Logger.Debug("feed: events wait on its consumer", "feed", f.Name, "pending", info.NumPending, "waiting_pulls", info.NumWaiting)
		return true
	}
	return false
}

// feedStallWaits is how many waits in a row without an event a feed makes before it checks
// whether events wait for it on the server; doubled after each check that finds none, up to
// feedStallWaitsMax (a minute).
const (
	feedStallWaits    = 3
	feedStallWaitsMax = 30
)

// feedHeartbeat is how often the server tells a waiting feed that its pull request is alive
// (nats.go's least), and feedWait how long one wait for the next event lasts: more than two
// heartbeats, so that a request the server lost is noticed within one wait.
const (
	feedHeartbeat = 500 * time.Millisecond
	feedWait      = 2 * time.Second
)

// envelopeHead is what the feed reads of a stored event.
type envelopeHead struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

func (f *Feed) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		f.Logger.Error("feed: message without metadata", "feed", f.Name, "err", err)
		msg.Term()
		return
	}
	seq := meta.Sequence.Stream
	ack := func(settle func(context.Context) error) {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		if err := settle(actx); err != nil {
			f.Logger.Warn("feed: ack failed; the event may be delivered again", "feed", f.Name, "seq", seq, "err", err)
		}
	}
	f.mu.Lock()
	last := f.lastSeq
	f.mu.Unlock()
	if seq <= last {
		// Offered again after its acknowledgement was lost: it was delivered.
		ack(msg.DoubleAck)
		return
	}
	var head envelopeHead
	json.Unmarshal(msg.Data(), &head)
	m := Message{Seq: seq, Subject: msg.Subject(), Type: head.Type, ID: head.ID, Data: msg.Data()}
	if len(f.Types) > 0 && !contains(f.Types, head.Type) {
		ack(msg.DoubleAck)
		f.mu.Lock()
		f.skipped++
		f.lastSeq = seq
		f.mu.Unlock()
		return
	}
	dctx, cancel := graceContext(ctx, shutdownGrace)
	defer cancel()
	began := time.Now()
	wait := f.Backoff
	for attempt := 1; ; attempt++ {
		m.Attempt = attempt
		err := f.deliverKeepingAlive(dctx, msg, m)
		if err == nil {
			ack(msg.DoubleAck)
			f.mu.Lock()
			f.delivered++
			f.lastSeq = seq
			f.failing = false
			f.mu.Unlock()
			return
		}
		f.mu.Lock()
		f.lastErr, f.lastErrSeq, f.lastErrAt, f.failing = err.Error(), seq, time.Now().UTC(), true
		f.mu.Unlock()
		var perm PermanentError
		if errors.As(err, &perm) || (f.RetryFor > 0 && time.Since(began)+wait > f.RetryFor) ||
			(f.MaxAttempts > 0 && attempt >= f.MaxAttempts) {
			f.Logger.Error("feed: giving up on an event", "feed", f.Name, "seq", seq, "event", m.ID,
				"attempts", attempt, "retried_for", time.Since(began).Round(time.Millisecond), "err", err)
			if f.GiveUp != nil {
				f.GiveUp(context.WithoutCancel(ctx), m, attempt, err)
			}
			ack(msg.DoubleAck)
			f.mu.Lock()
			f.lastSeq = seq
			f.failing = false
			f.mu.Unlock()
			return
		}
		f.Logger.Warn("feed: delivery failed; retrying", "feed", f.Name, "seq", seq, "event", m.ID,
			"attempt", attempt, "retry_in", wait, "err", err)
		if !f.sleep(ctx, msg, wait) {
			// Stopping: hand the event back so that the next Run delivers it at once.
			ack(func(context.Context) error { return msg.Nak() })
			return
		}
		wait = min(2*wait, f.MaxBackoff)
	}
}

// deliverKeepingAlive calls Deliver while telling the server, well within its ack wait, that
// the event is being worked on, so that it is not offered again meanwhile.
func (f *Feed) deliverKeepingAlive(ctx context.Context, msg jetstream.Msg, m Message) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(f.heartbeat())
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				msg.InProgress()
			}
		}
	}()
	return f.Deliver(ctx, m)
}

// heartbeat is how often a feed working on an event tells the server so (msg.InProgress):
// five times within the ack wait, so that a loaded process missing a few beats keeps it.
func (f *Feed) heartbeat() time.Duration { return f.AckWait / 5 }

// sleep waits d, keeping the event in progress; false when ctx ended first.
func (f *Feed) sleep(ctx context.Context, msg jetstream.Msg, d time.Duration) bool {
	msg.InProgress()
	end := time.NewTimer(d)
	defer end.Stop()
	tick := time.NewTicker(f.heartbeat())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-end.C:
			msg.InProgress()
			return true
		case <-tick.C:
			msg.InProgress()
		}
	}
}

// Status is what a feed reports of itself.
type Status struct {
	// Delivered counts the events delivered since the process started; Skipped those the
	// type filter passed over.
	Delivered uint64 `json:"delivered"`
	Skipped   uint64 `json:"skipped,omitempty"`
	// Position is the log position of the last event acknowledged (0: none yet).
	Position uint64 `json:"position"`
	// Lag counts the events matching the subjects that are not acknowledged yet.
	Lag uint64 `json:"lag"`
	// Failing is true while an event is being retried.
	Failing   bool   `json:"failing"`
	LastError string `json:"last_error,omitempty"`
	// LastErrorSeq is the log position of the event LastError is about.
	LastErrorSeq uint64     `json:"last_error_seq,omitempty"`
	LastErrAt    *time.Time `json:"last_error_at,omitempty"`
	// Error says why the consumer could not be read, when it could not.
	Error string `json:"error,omitempty"`
}

// Status returns the feed's counters and asks the server for its position and lag.
func (f *Feed) Status(ctx context.Context) Status {
	f.mu.Lock()
	st := Status{Delivered: f.delivered, Skipped: f.skipped, Failing: f.failing, LastError: f.lastErr, LastErrorSeq: f.lastErrSeq}
	if !f.lastErrAt.IsZero() {
		t := f.lastErrAt
		st.LastErrAt = &t
	}
	cons := f.cons
	f.mu.Unlock()
	if cons == nil {
		st.Error = "not started"
		return st
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := cons.Info(ictx)
	if err != nil {
		st.Error = fmt.Sprintf("consumer info: %v", err)
		return st
	}
	st.Position = info.AckFloor.Stream
	st.Lag = info.NumPending + uint64(info.NumAckPending)
	return st
}

// graceContext is a context that ends grace after ctx does.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(gctx, func() { t.Stop() })
	})
	return gctx, func() {
		stop()
		cancel()
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
