package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultLeaseTTL is how long a lease outlives its holder's last renewal (see AcquireLease).
const DefaultLeaseTTL = 30 * time.Second

// LeaseBucket is the name of the JetStream key-value bucket of stream's leases.
func LeaseBucket(stream string) string { return stream + "_LEASES" }

// Lease is a named lease held by one holder among every memledger instance on the same
// server or cluster: the jobs that must run once per cluster (the nightly pipeline) run
// while holding one. It is a key in a JetStream key-value bucket whose entries the server
// removes TTL after they were last written: the holder rewrites it every TTL/3, and a holder
// that dies (or is cut off) loses it TTL after its last renewal, by the server's clock alone
// (a holder cut off gives it up sooner, see renew).
type Lease struct {
	store  *Store
	kv     jetstream.KeyValue
	key    string
	holder string
	// value is what the holder writes to the key.
	value []byte
	// lost is closed when the lease is no longer held (released, or a renewal failed).
	lost     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	lostOnce sync.Once
	mu       sync.Mutex
	rev      uint64
	err      error
}

type leaseValue struct {
	Holder     string    `json:"holder"`
	AcquiredAt time.Time `json:"acquired_at"`
}

// leaseBucketCache is the lease bucket a store opened: it is created (or its settings
// updated) once, not on every try of a waiting instance, since on a cluster each update is a
// request to the meta leader that every waiting instance would otherwise make four times a
// second.
type leaseBucketCache struct {
	mu sync.Mutex
	kv jetstream.KeyValue
}

// leaseBucket opens (or creates) the store's lease bucket, within the read timeout.
func (s *Store) leaseBucket(ctx context.Context) (jetstream.KeyValue, error) {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	if s.leases.kv != nil {
		return s.leases.kv, nil
	}
	ttl := s.LeaseTTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	// Bounded even under a caller's longer deadline: a cluster asked to create the bucket by
	// several instances at once may leave a request unanswered, and the next try succeeds.
	ctx, cancel := leaseRequestContext(ctx)
	defer cancel()
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket(s.Stream),
		Description: "memledger: the leases of the jobs that run once per cluster",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket: %w", err)
	}
	s.leases.kv = kv
	return kv, nil
}

// leaseRequestContext bounds one request about a lease by the read timeout, whatever the
// caller's own deadline: a waiting caller (a nightly run may wait an hour) tries again rather
// than wait on a request the server left unanswered.
func leaseRequestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, readTimeout)
}

// forgetLeaseBucket drops the opened bucket after an error that may mean it is gone (see
// leaseBucketGone), so that the next try creates it again.
func (s *Store) forgetLeaseBucket(err error) {
	if leaseBucketGone(err) {
		s.leases.mu.Lock()
		s.leases.kv = nil
		s.leases.mu.Unlock()
	}
}

// TryAcquireLease takes the lease name for holder if no one holds it, and reports whether it
// did. A lease taken is renewed until Release, or until a renewal fails (see Lost).
func (s *Store) TryAcquireLease(ctx context.Context, name, holder string) (*Lease, bool, error) {
	kv, err := s.leaseBucket(ctx)
	if err != nil {
		return nil, false, err
	}
	sent := time.Now()
	value, _ := json.Marshal(leaseValue{Holder: holder, AcquiredAt: sent.UTC()})
	rctx, cancel := leaseRequestContext(ctx)
	rev, err := kv.Create(rctx, name, value)
	cancel()
	if leaseRaceLost(err) {
		// Held by another, or just taken by another from under a delete marker.
		return nil, false, nil
	}
	if err != nil {
		s.forgetLeaseBucket(err)
		return nil, false, fmt.Errorf("lease %s: %w", name, err)
	}
	sctx, cancel := leaseRequestContext(ctx)
	status, err := kv.Status(sctx)
	cancel()
	if err != nil {
		// Taken but not to be renewed: give it back rather than leave it held for a TTL.
		dctx, cancel := leaseRequestContext(context.WithoutCancel(ctx))
		if derr := kv.Delete(dctx, name, jetstream.LastRevision(rev)); derr != nil {
			err = errors.Join(err, fmt.Errorf("give it back: %w", derr))
		}
		cancel()
		return nil, false, fmt.Errorf("lease %s: %w", name, err)
	}
	l := &Lease{store: s, kv: kv, key: name, holder: holder, value: value, rev: rev, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew(status.TTL(), sent)
	return l, true, nil
}

// AcquireLease waits until it holds the lease name for holder (trying every poll), or ctx is
// done. A try that fails for a while (the server or cluster does not answer, say while its
// leader changes; see leaseRetryable) is logged and made again at the next poll: that wait
// is bounded by ctx alone. A try the server refuses for good (an account limit, a
// permission, a bucket that cannot be made) ends the wait at once with an error that wraps
// ErrLeaseRefused and says why.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, poll time.Duration) (*Lease, error) {
	var failing error
	for {
		l, ok, err := s.TryAcquireLease(ctx, name, holder)
		switch {
		case ok:
			if failing != nil {
				s.Logger.Info("lease taken after failed tries", "lease", name, "holder", holder)
			}
			return l, nil
		case err != nil && ctx.Err() == nil && !s.leaseRetryable(err):
			if s.leasePermissionDenied() {
				// The request timed out; the refusal came apart, on the connection.
				err = fmt.Errorf("%w: %w", err, s.nc.LastError())
			}
			return nil, fmt.Errorf("%w by the NATS server, not tried again: %w", ErrLeaseRefused, err)
		case err != nil && ctx.Err() == nil:
			if failing == nil {
				s.Logger.Warn("taking a lease failed; trying again", "lease", name, "holder", holder, "err", err)
			}
			failing = err
		case err != nil:
			return nil, err
		}
		select {
		case <-ctx.Done():
			if failing != nil {
				return nil, fmt.Errorf("lease %s: %w (last try: %v)", name, ctx.Err(), failing)
			}
			return nil, fmt.Errorf("lease %s: %w", name, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// LeaseHolder says who holds the lease name ("" when no one does).
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	kv, err := s.leaseBucket(ctx)
	if err != nil {
		return "", err
	}
	gctx, cancel := leaseRequestContext(ctx)
	defer cancel()
	e, err := kv.Get(gctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lease %s: %w", name, err)
	}
	var v leaseValue
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return "", fmt.Errorf("lease %s: %w", name, err)
	}
	return v.Holder, nil
}

// renew rewrites the lease every ttl/3, expecting the revision it last wrote. A lease taken
// by another holder (after it expired) ends it, and so does a server that cannot be reached:
// the server removes the lease ttl after it received the last write, which it received after
// that write was sent, so a holder gives it up when 2/3 of ttl have passed since it sent its
// last successful renewal, by a timer reset on each one and independent of the ticks; no
// renewal request outlives that deadline.
func (l *Lease) renew(ttl time.Duration, sent time.Time) {
	defer close(l.done)
	interval, giveUp := ttl/3, 2*ttl/3
	lastOK := sent
	deadline := lastOK.Add(giveUp)
	expire := time.NewTimer(time.Until(deadline))
	defer expire.Stop()
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		select {
		case <-l.stop:
			return
		case <-expire.C:
			if last == nil {
				last = errors.New("no renewal answered")
			}
			l.end(fmt.Errorf("lease %s lost: not renewed for %s: %w", l.key, time.Since(lastOK).Round(time.Millisecond), last))
			return
		case <-t.C:
		}
		sent := time.Now()
		by := sent.Add(interval / 2)
		if deadline.Before(by) {
			by = deadline
		}
		ctx, cancel := context.WithDeadline(context.Background(), by)
		err := l.update(ctx, func(ctx context.Context, rev uint64) (uint64, error) {
			return l.kv.Update(ctx, l.key, l.value, rev)
		})
		cancel()
		if err == nil {
			lastOK, deadline = sent, sent.Add(giveUp)
			expire.Reset(time.Until(deadline))
			last = nil
			continue
		}
		last = err
		var apiErr *jetstream.APIError
		if leaseRaceLost(err) || (errors.As(err, &apiErr) && !l.store.leaseRetryable(err)) {
			// Another holder wrote it, or the server removed it (the lease expired), or the
			// server refuses the renewal for good. Other failures (no answer, a closed
			// connection) are tried again until the give-up deadline.
			l.end(fmt.Errorf("lease %s lost: %w", l.key, err))
			return
		}
	}
}

// update runs write (a renewal or the release's delete) expecting the revision last written.
// A renewal that timed out may still have been applied, leaving that revision stale: on a
// revision mismatch, a lease whose stored value is still the holder's own is still held, and
// write runs again expecting the revision the key now has.
func (l *Lease) update(ctx context.Context, write func(ctx context.Context, rev uint64) (uint64, error)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rev, err := write(ctx, l.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		e, gerr := l.kv.Get(ctx, l.key)
		if gerr != nil || e.Operation() != jetstream.KeyValuePut || !bytes.Equal(e.Value(), l.value) {
			return err
		}
		l.rev = e.Revision()
		rev, err = write(ctx, l.rev)
	}
	if err != nil {
		return err
	}
	if rev != 0 {
		l.rev = rev
	}
	return nil
}

func (l *Lease) end(err error) {
	l.lostOnce.Do(func() {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		close(l.lost)
	})
}

// Lost is closed when the lease is no longer held: released, or lost (see Err).
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err says why the lease was lost (nil while it is held, or after Release).
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Release stops renewing the lease and deletes it, if this holder still holds it, so that
// another can take it at once.
func (l *Lease) Release(ctx context.Context) error {
	select {
	case <-l.stop:
		return nil
	default:
	}
	close(l.stop)
	<-l.done
	l.end(nil)
	if l.Err() != nil {
		return nil
	}
	ctx, cancel := leaseRequestContext(ctx)
	defer cancel()
	if err := l.update(ctx, func(ctx context.Context, rev uint64) (uint64, error) {
		return 0, l.kv.Delete(ctx, l.key, jetstream.LastRevision(rev))
	}); err != nil {
		return fmt.Errorf("release lease %s: %w", l.key, err)
	}
	return nil
}
