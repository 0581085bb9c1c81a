package eventstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/nats-io/nats-server/v2/server"
)

// Defaults of the embedded server's revival after it switched JetStream off.
const (
	// DefaultReviveFree is the free space the log's disk must have before JetStream is
	// switched back on: a message block and its index with room to spare.
	DefaultReviveFree = 32 << 20
	// DefaultReviveInterval is how often a switched-off JetStream is looked at.
	DefaultReviveInterval = time.Second
)

// revival keeps what the embedded server needs to switch JetStream back on.
type revival struct {
	cfg  server.JetStreamConfig // as the server started it, StoreDir without its "jetstream"
	stop chan struct{}
	done chan struct{}
	// broken is why the log cannot be written until JetStream is restarted: appends are
	// refused at once meanwhile, instead of waiting for an answer that does not come.
	broken atomic.Pointer[error]
}

// startRevival watches the embedded server's JetStream and restarts it in the process once the
// log's disk has room again, after a write failed for want of it. A stream whose write failed
// keeps that error and refuses every later write (it does not answer them at all), and some
// failures switch the server's JetStream off; neither ends by itself when space is freed, so
// without this a full disk would need a restart of the whole service.
func (s *Store) startRevival() {
	cfg := s.srv.JetStreamConfig()
	if cfg == nil {
		return
	}
	c := *cfg
	c.StoreDir = filepath.Dir(c.StoreDir) // EnableJetStream adds "jetstream" again
	// The server derives its store limit from the disk's free space (and what the log
	// already holds) when none is set: derived again once space was freed.
	c.MaxStore = 0
	s.revive = &revival{cfg: c, stop: make(chan struct{}), done: make(chan struct{})}
	go s.reviveLoop(s.srv, s.revive)
}

func (s *Store) reviveLoop(srv *server.Server, r *revival) {
	defer close(r.done)
	every := s.ReviveInterval
	if every <= 0 {
		every = DefaultReviveInterval
	}
	need := s.ReviveFree
	if need == 0 {
		need = DefaultReviveFree
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var offSince time.Time
	var lastFree uint64
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		on := srv.JetStreamEnabled()
		var werr error
		if on {
			if failing, _ := s.AppendFailure(); failing != nil {
				werr = s.writeError()
			}
			if werr == nil {
				r.broken.Store(nil)
				offSince = time.Time{}
				continue
			}
		}
		broken := werr
		if broken == nil {
			broken = errors.New("the embedded server has switched JetStream off")
		}
		r.broken.Store(&broken)
		if offSince.IsZero() {
			offSince = time.Now()
			s.Logger.Error("log: the embedded server cannot write the log; writes are refused until its disk has room again and JetStream is restarted",
				"store", r.cfg.StoreDir, "jetstream_on", on, "write_error", werr, "needs_free_bytes", need)
		}
		free, err := freeBytes(r.cfg.StoreDir)
		if err != nil {
			s.Logger.Warn("log: cannot tell the free space of the log's disk", "store", r.cfg.StoreDir, "err", err)
			continue
		}
		if free < need {
			if free != lastFree {
				s.Logger.Warn("log: waiting for room on the log's disk before switching JetStream back on",
					"free_bytes", free, "needs_free_bytes", need)
				lastFree = free
			}
			continue
		}
		if on {
			// The stream holds its write error until it is loaded again from its files,
			// which restarting JetStream does (as a restart of the process would).
			if err := srv.ShutdownJetStream(); err != nil {
				s.Logger.Error("log: stopping JetStream to restart it failed; trying again", "err", err)
				continue
			}
		}
		cfg := r.cfg
		if err := srv.EnableJetStream(&cfg); err != nil {
			s.Logger.Error("log: starting JetStream again failed; trying again", "err", err)
			srv.ShutdownJetStream() // a failed start can leave it half on
			continue
		}
		r.broken.Store(nil)
		s.Logger.Warn("log: JetStream restarted in the process; the log takes writes again",
			"failed_for", time.Since(offSince).Round(time.Millisecond), "free_bytes", free)
		offSince, lastFree = time.Time{}, 0
	}
}

// stopRevival stops the watch before the server is shut down (a shut-down server's JetStream
// is off too, and must stay so).
func (s *Store) stopRevival() {
	if s.revive == nil {
		return
	}
	select {
	case <-s.revive.stop:
	default:
		close(s.revive.stop)
	}
	<-s.revive.done
}

// Broken is why the embedded server cannot write the log until its JetStream is restarted
// (a write failed for want of space, or JetStream was switched off), nil when it can (and
// always for an external server, which restarts on its own terms).
func (s *Store) Broken() error {
	if s.revive == nil {
		return nil
	}
	if err := s.revive.broken.Load(); err != nil {
		return *err
	}
	return nil
}

// writeError is the write error the embedded server's stream of the log holds (a stream keeps
// the first one and refuses every later write), nil when there is none.
func (s *Store) writeError() error {
	if s.srv == nil {
		return nil
	}
	h := s.srv.Healthz(&server.HealthzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Stream: s.Stream})
	if h == nil || !strings.Contains(h.Error, "write error") {
		return nil
	}
	if strings.Contains(h.Error, "no space left") {
		return fmt.Errorf("%s: %w", h.Error, syscall.ENOSPC)
	}
	return errors.New(h.Error)
}

// cannotWrite is the refusal of an append while the embedded server cannot write the log
// for cause: a full disk is domain.ErrInsufficientStorage (507), anything else
// domain.ErrUnavailable (503). Nothing was acknowledged, so a retry with the same
// Idempotency-Key is safe.
func cannotWrite(cause error) error {
	kind := domain.ErrUnavailable
	if errors.Is(cause, syscall.ENOSPC) {
		kind = domain.ErrInsufficientStorage
	}
	return fmt.Errorf("%w: the log cannot be written until the embedded server restarts its JetStream, which memledger does once the disk has room (%v); the append was not acknowledged: retry with the same Idempotency-Key later",
		kind, cause)
}

// freeBytes is the space an unprivileged writer may still use on dir's file system.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
