package app

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/memledger/memledger/domain"
)

// nightlyLeaseName is the lease the nightly pipeline runs under (see eventstore.Lease).
const nightlyLeaseName = "nightly"

// leasePoll is how often a waiting instance tries to take a lease.
const leasePoll = 250 * time.Millisecond

// nightlyLease waits for the nightly pipeline's lease on the shared log and holds it: the
// context it returns ends when the lease is lost, with a cause that wraps
// domain.ErrUnavailable (a 503 with Retry-After), and release lets another instance take it.
func (m *Main) nightlyLease(ctx context.Context) (context.Context, func(), error) {
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s pid %d %s", host, os.Getpid(), m.Addr())
	l, err := m.Store.AcquireLease(ctx, nightlyLeaseName, holder, leasePoll)
	if err != nil {
		return nil, nil, err
	}
	leased, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-l.Lost():
			if err := l.Err(); err != nil {
				m.Logger.Error("the nightly pipeline's lease was lost; the run stops", "err", err)
				cancel(fmt.Errorf("%w: this instance lost the nightly pipeline's lease (%w), so its run stopped; another instance may take the lease and run the steps not done", domain.ErrUnavailable, err))
				return
			}
			cancel(nil)
		case <-leased.Done():
		}
	}()
	return leased, func() {
		cancel(nil)
		if err := l.Release(context.Background()); err != nil {
			m.Logger.Warn("releasing the nightly pipeline's lease failed; it expires by itself", "err", err)
		}
	}, nil
}
