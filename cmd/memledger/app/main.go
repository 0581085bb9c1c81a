// Package app wires memledger's packages into the program: the service that serve runs and
// the operator commands. Tests start it in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers"
	"github.com/memledger/memledger/projections"
)

// Projections are the views the runner keeps, in the order it applies them.
func Projections() []projections.Projection {
	return []projections.Projection{projections.Memories{}}
}

// Main is the running service: the log, the projections, their runner and the HTTP server.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Now is the clock commands are stamped with (time.Now); tests set it before Open.
	Now func() time.Time

	Store  *eventstore.Store
	DB     *projections.DB
	Runner *projections.Runner
	API    *handlers.Server

	http      *http.Server
	listener  net.Listener
	cancel    context.CancelFunc
	runnerErr chan error
	serveErr  chan error
}

// NewMain returns a Main for cfg.
func NewMain(cfg Config, logger *slog.Logger) *Main {
	return &Main{Config: cfg, Logger: logger}
}

// Open starts everything: it takes the projection file (and with it the data directory), starts
// or connects to the log, starts the runner and listens for HTTP. It returns once the service
// answers.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := os.MkdirAll(m.Config.Data, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if m.DB, err = projections.Open(m.Config.ProjectionsPath(), false); err != nil {
		return err
	}
	m.Store = m.Config.store(m.Logger)
	if err := m.Store.Open(ctx); err != nil {
		return err
	}
	m.Runner = &projections.Runner{DB: m.DB, Source: m.Store, Projections: Projections(), Logger: m.Logger}
	if err := m.Runner.Init(); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.runnerErr = make(chan error, 1)
	go func() { m.runnerErr <- m.Runner.Run(runCtx) }()

	m.API = &handlers.Server{Store: m.Store, DB: m.DB, Runner: m.Runner, Rules: domain.DefaultRules(),
		Version: Version, Logger: m.Logger, Now: m.Now}
	if m.listener, err = net.Listen("tcp", m.Config.Addr); err != nil {
		return fmt.Errorf("listen on %s: %w", m.Config.Addr, err)
	}
	m.http = &http.Server{Handler: m.API.Handler(), ReadHeaderTimeout: 10 * time.Second}
	m.serveErr = make(chan error, 1)
	go func() { m.serveErr <- m.http.Serve(m.listener) }()
	m.Logger.Info("memledger serving", "addr", m.Addr(), "data", m.Config.Data,
		"nats", natsDescription(m.Config, m.Store), "fsync", m.Config.Fsync)
	return nil
}

func natsDescription(c Config, s *eventstore.Store) string {
	if c.NatsURL != "" {
		return c.NatsURL
	}
	if u := s.ClientURL(); u != "" {
		return "embedded, listening on " + u
	}
	return "embedded"
}

// Addr is the address the HTTP server listens on.
func (m *Main) Addr() string {
	if m.listener == nil {
		return ""
	}
	return m.listener.Addr().String()
}

// Wait blocks until ctx is done or a part of the service fails, and returns that failure.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-m.runnerErr:
		return fmt.Errorf("projection runner stopped: %w", err)
	case err := <-m.serveErr:
		return fmt.Errorf("http server stopped: %w", err)
	}
}

// Close stops the service: HTTP first (letting requests finish), then the runner, the log and
// the projection file.
func (m *Main) Close() error {
	var errs []error
	if m.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := m.http.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
		m.http = nil
	}
	if m.cancel != nil {
		m.cancel()
		if err := <-m.runnerErr; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
		m.cancel = nil
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
		m.Store = nil
	}
	if m.DB != nil {
		errs = append(errs, m.DB.Close())
		m.DB = nil
	}
	return errors.Join(errs...)
}
