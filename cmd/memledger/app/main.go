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
	"net/url"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers"
	"github.com/memledger/memledger/handlers/auth"
	"github.com/memledger/memledger/handlers/backup"
	"github.com/memledger/memledger/handlers/feed"
	"github.com/memledger/memledger/handlers/jobs"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/handlers/mcpserver"
	"github.com/memledger/memledger/handlers/sinks"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/memledger/memledger/projections"
)

// Projections are the views the runner keeps, in the order it applies them, with the default
// cache budget.
func Projections() []projections.Projection { return projectionsWith(DefaultConfig().CacheBytes) }

// projectionsWith are Projections with a decoded-state cache of cacheBytes.
func projectionsWith(cacheBytes int64) []projections.Projection {
	return []projections.Projection{projections.NewMemories(cacheBytes), projections.Alerts{}, projections.Projects{},
		projections.State{}, projections.Documents{}, projections.Integrity{}, projections.Nightly{}, projections.Subscriptions{}, projections.Timeline{}, projections.Tokens{}}
}

// Main is the running service: the log, the projections, their runner and the HTTP server.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Now is the clock commands are stamped with (time.Now); tests set it before Open.
	Now func() time.Time
	// WebhookTransport, when set, carries the webhook sink's requests (tests route a Discord
	// URL to a local server with it).
	WebhookTransport http.RoundTripper
	// SearchIdle, set before Open, opens the search index without letting it follow the log:
	// benchmarks measure the writes without the indexing beside them.
	SearchIdle bool
	// ProjectionsHook, set before Open, is the runner's BeforeCommit: tests hold the
	// projections back or fail their writes with it.
	ProjectionsHook func(batch []domain.Event) error
	// LogReviveFree, set before Open, is the free space the log's disk must have before the
	// embedded server's JetStream, switched off by a full disk, is switched back on
	// (eventstore.DefaultReviveFree when 0): tests fill a small disk.
	LogReviveFree uint64
	// BeforeAdminToken, set before Open, is called by a first start that found no token in
	// the log, before it writes admin.token and issues the admin token: tests start two
	// instances into that window at once.
	BeforeAdminToken func()

	Store  *eventstore.Store
	DB     *projections.DB
	Runner *projections.Runner
	// Search is the full-text index, which follows the log on its own.
	Search *projections.Search
	// Ledger carries out every command: the API's, the pipeline's and the sinks'.
	Ledger *ledger.Ledger
	API    *handlers.Server
	// MCP serves the Model Context Protocol tools and resources (/mcp, memledger mcp).
	MCP *mcpserver.Service
	// Nightly is the nightly pipeline; tests may change its steps before running it.
	Nightly *jobs.Nightly

	// recovering is set by token recover, which issues the admin token the start would warn
	// is missing.
	recovering bool
	// keys is the server key file's keyring (the subscriptions' secrets; the token and
	// session keys are derived from it).
	keys *subscriptions.Keyring

	lock     *dataLock
	http     *http.Server
	listener net.Listener
	// metrics serves /metrics alone on --metrics-addr, when set.
	metrics         *http.Server
	metricsListener net.Listener
	cancel          context.CancelFunc
	// runnerDone is closed when the runner stops, runnerErr holding why.
	runnerDone chan struct{}
	runnerErr  error
	// checkedAtStart is the stream's state the start's log check saw.
	checkedAtStart eventstore.State
	// damage is what the log check in the background found.
	damage logDamage
	// searchDone is closed when the search index stops following the log.
	searchDone chan struct{}
	serveErr   chan error
	sinksDone  sync.WaitGroup
}

// openStore starts or connects to the log.
func (m *Main) openStore(ctx context.Context) error {
	store, err := m.Config.store(m.Logger)
	if err != nil {
		return err
	}
	m.Store = store
	store.ReviveFree = m.LogReviveFree
	return store.Open(ctx)
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
	if err := m.Config.check(); err != nil {
		return err
	}
	if err := m.Config.checkAuth(); err != nil {
		return err
	}
	if err := prepareDataDir(m.Config.Data, m.Logger); err != nil {
		return err
	}
	if m.lock, err = lockData(m.Config.Data, "serve"); err != nil {
		return err
	}
	// The projection file and the log open side by side: after a crash each reads all it holds
	// (bbolt's walk of every page, the embedded server's recovery of its stream), a second or
	// more each on a million memories, and a machine has cores for both.
	began := time.Now()
	var logOpen time.Duration
	storeOpened := make(chan error, 1)
	go func() {
		err := m.openStore(ctx)
		logOpen = time.Since(began)
		storeOpened <- err
	}()
	m.DB, err = projections.OpenLive(m.Config.ProjectionsPath(), m.Config.ProjectionsSync, m.Logger)
	projectionsOpen := time.Since(began)
	if err := errors.Join(err, <-storeOpened); err != nil {
		return err
	}
	searchBegan := time.Now()
	if m.Search, err = projections.OpenSearch(m.Config.SearchPath(), m.Logger); err != nil {
		return err
	}
	searchOpen := time.Since(searchBegan)
	checkBegan := time.Now()
	loss, checkFrom, err := m.checkLogAtStart(ctx)
	if err != nil {
		return err
	}
	logCheck := time.Since(checkBegan)
	if loss != nil {
		if !m.Config.AcceptLogLoss {
			return loss
		}
		if err := m.acceptLogLoss(ctx, loss); err != nil {
			return err
		}
	}
	if err := m.logCheckedAtStart(); err != nil {
		return err
	}
	if err := m.checkSearchAhead(ctx); err != nil {
		return err
	}
	// The projections catch up, at a rebuild's speed, to what the log held at the start: the
	// reads wait until they have (see handlers.Server.ReadWait).
	last, err := m.Store.LastSeq(ctx)
	if err != nil {
		return err
	}
	m.Runner = &projections.Runner{DB: m.DB, Source: m.Store, Projections: projectionsWith(m.Config.CacheBytes), Logger: m.Logger, CatchUpTo: last,
		BeforeCommit: m.ProjectionsHook}
	if err := m.Runner.Init(); err != nil {
		return err
	}
	// A write's own event goes to the runner as soon as the log has taken it.
	m.Store.Stored = m.Runner.Offer
	if applied := m.Runner.Applied(); applied < last {
		m.Logger.Info("projections catching up with the log; reads wait until they have", "applied", applied, "target", last)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.runnerDone = make(chan struct{})
	go func() {
		defer close(m.runnerDone)
		m.runnerErr = m.Runner.Run(runCtx)
		if m.runnerErr != nil && runCtx.Err() == nil {
			m.Logger.Error("projection runner stopped", "err", m.runnerErr)
		}
	}()
	// The search index catches up with the log's past in bulk, within the same budget of held
	// writes a build has.
	m.Search.CatchUpTo = last
	m.Search.Held = projections.HeldBudgetFor(m.Config.memoryLimit())
	m.searchDone = make(chan struct{})
	go func() {
		defer close(m.searchDone)
		if m.SearchIdle {
			return
		}
		// A failure is kept in m.Search.Err, which /health reports; searches answer with
		// what was indexed.
		if err := m.Search.Run(runCtx, m.Store, 0, nil); err != nil && runCtx.Err() == nil {
			m.Logger.Error("search index stopped", "err", err)
		}
	}()

	// The log before what the start's check read is read back in the background, and how far
	// the log has been read whole is recorded as it grows.
	m.sinksDone.Add(2)
	go func() {
		defer m.sinksDone.Done()
		m.checkOldLog(runCtx, checkFrom)
	}()
	go func() {
		defer m.sinksDone.Done()
		m.keepLogChecked(runCtx)
	}()

	// The server key file: the subscriptions' secrets are sealed with it, the token digests
	// and the session cookies keyed with keys derived from it.
	if m.keys, err = subscriptions.LoadKeyring(m.Config.SubscriptionKeyPath()); err != nil {
		return err
	}
	tokens, err := tokenKey(m.keys, m.Config.SubscriptionKeyPath())
	if err != nil {
		return err
	}
	rules := domain.DefaultRules()
	rules.MaxContentLength = m.Config.MaxContent
	m.Ledger = &ledger.Ledger{Store: m.Store, DB: m.DB, Runner: m.Runner, Rules: rules, Now: m.Now, Logger: m.Logger,
		Refuse: m.refuseWrites, TokenKey: tokens}
	m.sinksDone.Add(1)
	go func() {
		defer m.sinksDone.Done()
		m.watchWrites(runCtx)
	}()
	m.API = handlers.NewServer(m.Ledger, m.Runner)
	m.API.Search, m.API.Version, m.API.Logger, m.API.ReadWait = m.Search, Version, m.Logger, m.Config.ReadWait
	m.API.LogDamage = m.damage.Err
	m.API.Jobs = jobs.Rules{AutoPromoteRefs: m.Config.AutoPromoteRefs, AutoPromoteConfidence: m.Config.AutoPromoteConfidence,
		CandidateMaxAge: time.Duration(m.Config.CandidateMaxAgeDays * float64(24*time.Hour))}
	m.API.Pipeline = jobs.PipelineRules{MinPassRate: m.Config.MinPassRate, MaxCandidates: m.Config.MaxCandidates}
	m.API.Feed = &feed.Server{StallTimeout: m.Config.FeedStallTimeout, BufferBytes: m.Config.FeedBufferBytes}
	if m.Now != nil {
		m.API.Now = m.Now
	}
	m.MCP = &mcpserver.Service{Ledger: m.Ledger, DB: m.DB, Search: m.Search, Store: m.Store, Runner: m.Runner, Rules: rules,
		Now: m.Now, ReadWait: m.Config.ReadWait, Version: Version, Logger: m.Logger}
	var authn *auth.Authenticator
	if m.Config.Auth != AuthOff {
		authn = &auth.Authenticator{DB: m.DB, Key: tokens, SessionKey: m.keys.Derive(sessionKeyLabel), Ledger: m.Ledger,
			Now: m.Now, Logger: m.Logger}
		m.API.Auth = authn
		m.sinksDone.Add(1)
		go func() {
			defer m.sinksDone.Done()
			// Once the tokens projection holds the log, say so when tokens were issued
			// under another key file than this instance's.
			if m.Runner.WaitFor(runCtx, m.Runner.CatchUpTo) == nil {
				authn.CheckKey()
			}
		}()
	}
	m.API.AllowedHosts = m.Config.allowedHosts()
	// /mcp acts as the request's token, with its role (every role with --auth off).
	m.API.MCP = m.MCP.Handler(mcpPrincipal(authn), authn != nil)
	m.API.Backup = &backup.Source{Store: m.Store, DB: m.DB, TempDir: m.Config.Data, MemledgerVersion: Version,
		Files: map[string]string{subscriptions.KeyFileName: m.Config.SubscriptionKeyPath()}}
	m.sinksDone.Add(1)
	go func() {
		defer m.sinksDone.Done()
		if err := m.MCP.Run(runCtx); err != nil && runCtx.Err() == nil {
			m.Logger.Error("MCP resource updates stopped", "err", err)
		}
	}()
	handler := m.API.Handler()
	if err := m.startSinks(runCtx); err != nil {
		return err
	}
	if err := m.startSubscriptions(runCtx); err != nil {
		return err
	}
	m.Nightly = jobs.NewNightly(m.Ledger, m.API.Jobs, m.API.Pipeline, m.API.Now, m.Logger)
	m.API.Nightly = m.Nightly
	if m.Config.NatsURL != "" {
		// Other instances may share the log: one at a time runs the pipeline.
		m.Nightly.Lease = m.nightlyLease
	}
	if m.Config.NightlyAt != "" {
		if err := jobs.ParseNightlyAt(m.Config.NightlyAt); err != nil {
			return err
		}
		m.sinksDone.Add(1)
		go func() {
			defer m.sinksDone.Done()
			m.Nightly.Schedule(runCtx, m.Config.NightlyAt)
		}()
	}
	if m.API.Auth != nil {
		if err := m.ensureAdminToken(ctx); err != nil {
			return err
		}
	}
	if m.listener, err = net.Listen("tcp", m.Config.Addr); err != nil {
		return fmt.Errorf("listen on %s: %w", m.Config.Addr, err)
	}
	// A slow body or an idle keep-alive connection is cut; the alert watch stream lifts the
	// read deadline of its own connection.
	m.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: m.Config.ReadTimeout, IdleTimeout: 2 * time.Minute}
	m.http.RegisterOnShutdown(m.API.EndStreams)
	m.serveErr = make(chan error, 1)
	// The goroutine holds its own copies: Close may clear the fields before it runs.
	srv, ln := m.http, m.listener
	go func() { m.serveErr <- srv.Serve(ln) }()
	if err := m.serveMetrics(); err != nil {
		return err
	}
	// How long the start took, and its parts (the log's and the projections' opens side by
	// side, each from the start).
	m.Logger.Info("memledger serving", "addr", m.Addr(), "data", m.Config.Data,
		"nats", natsDescription(m.Config, m.Store), "fsync", m.Config.Fsync,
		"start_ms", ms(time.Since(began)), "log_open_ms", ms(logOpen), "projections_open_ms", ms(projectionsOpen),
		"search_open_ms", ms(searchOpen), "log_check_ms", ms(logCheck))
	return nil
}

// ms is d in milliseconds, for the log.
func ms(d time.Duration) int64 { return d.Milliseconds() }

func natsDescription(c Config, s *eventstore.Store) string {
	if c.NatsURL != "" {
		return c.NatsURL
	}
	if u := s.ClientURL(); u != "" {
		return "embedded, listening on " + u
	}
	return "embedded"
}

// checkSearchAhead builds the search index again when it holds events the log does not (the
// log check found the projections whole, or the loss was accepted).
func (m *Main) checkSearchAhead(ctx context.Context) error {
	last, err := m.Store.LastSeq(ctx)
	if err != nil {
		return err
	}
	if cp := m.Search.Applied(); cp > last {
		m.Logger.Warn("the search index is ahead of the log; building it again from the log",
			"checkpoint", cp, "log_last_seq", last)
		return m.Search.Reset()
	}
	return nil
}

// startSinks starts one runner per alert sink, each on its own durable consumer.
func (m *Main) startSinks(ctx context.Context) error {
	stream, err := m.Store.JetStream().Stream(ctx, m.Store.Stream)
	if err != nil {
		return err
	}
	runners := []*sinks.Runner{
		{Sink: sinks.LogSink{Logger: m.Logger}},
		{Sink: sinks.FileSink{Path: m.Config.AlertLogPath()}},
	}
	if m.Config.AlertWebhook != "" {
		if err := checkWebhookURL(m.Config.AlertWebhook); err != nil {
			return err
		}
		runners = append(runners, &sinks.Runner{
			Sink:     sinks.WebhookSink{URL: m.Config.AlertWebhook, Client: &http.Client{Timeout: m.Config.AlertWebhookTimeout, Transport: m.WebhookTransport}},
			Attempts: m.Config.AlertWebhookAttempts, Backoff: m.Config.AlertWebhookBackoff,
			MaxBackoff: m.Config.AlertWebhookMaxBackoff, RetryFor: m.Config.AlertWebhookRetryFor,
		})
	}
	for _, sr := range runners {
		sr.Stream, sr.Logger, sr.GiveUp = stream, m.Logger, m.recordDeliveryFailure(sr.Sink.Name())
		if err := sr.Start(ctx); err != nil {
			return err
		}
		m.sinksDone.Add(1)
		go func() {
			defer m.sinksDone.Done()
			sr.Run(ctx)
		}()
	}
	m.API.Sinks = runners
	return nil
}

func checkWebhookURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("alert-webhook %q is not an http(s) URL", u)
	}
	return nil
}

// recordDeliveryFailure returns the function a sink calls when it gives up on an alert: it
// records the failure as an event, which is not an alert, so no sink hears of it.
func (m *Main) recordDeliveryFailure(sink string) func(context.Context, domain.Alert, int, error) {
	return func(ctx context.Context, a domain.Alert, attempts int, err error) {
		if _, err := m.Ledger.RecordDeliveryFailure(ctx, ledger.Caller{Actor: "alert-sink-" + sink},
			domain.DeliveryFailed{AlertID: a.ID, AlertSeq: a.Seq, Sink: sink, Attempts: attempts, Error: err.Error()}); err != nil {
			m.Logger.Error("recording an alert delivery failure failed", "sink", sink, "alert", a.ID, "err", err)
		}
	}
}

// Addr is the address the HTTP server listens on.
func (m *Main) Addr() string {
	if m.listener == nil {
		return ""
	}
	return m.listener.Addr().String()
}

// serveMetrics listens on --metrics-addr, when set, and serves the metrics there without a
// token: a scraper needs none. It says so in the log, louder off loopback.
func (m *Main) serveMetrics() error {
	if m.Config.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", m.Config.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen on --metrics-addr %s: %w", m.Config.MetricsAddr, err)
	}
	m.metricsListener = ln
	m.metrics = &http.Server{Handler: m.API.MetricsHandler(m.Config.metricsHosts()), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: m.Config.ReadTimeout, IdleTimeout: 2 * time.Minute}
	srv := m.metrics
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("metrics listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	host, _, _ := net.SplitHostPort(m.Config.MetricsAddr)
	if isLoopback(host) {
		m.Logger.Info("serving /metrics without a token", "metrics_addr", ln.Addr().String())
	} else {
		m.Logger.Warn("serving /metrics without a token on an address other hosts may reach: counts and positions, no memory content; keep it to the scraper's network", "metrics_addr", ln.Addr().String())
	}
	return nil
}

// MetricsAddr is the address the metrics listener listens on ("" without --metrics-addr).
func (m *Main) MetricsAddr() string {
	if m.metricsListener == nil {
		return ""
	}
	return m.metricsListener.Addr().String()
}

// Wait blocks until ctx is done or a part of the service fails, and returns that failure.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-m.runnerDone:
		return fmt.Errorf("projection runner stopped: %w", m.runnerErr)
	case err := <-m.serveErr:
		return fmt.Errorf("http server stopped: %w", err)
	}
}

// Close stops the service: HTTP first (letting requests finish), then the runner, the log and
// the projection file.
func (m *Main) Close() error {
	var errs []error
	if m.metrics != nil {
		errs = append(errs, m.metrics.Close())
		m.metrics, m.metricsListener = nil, nil
	}
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
		m.sinksDone.Wait()
		<-m.runnerDone
		if m.searchDone != nil {
			<-m.searchDone
		}
		if err := m.runnerErr; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
		m.cancel = nil
	}
	if m.Search != nil {
		errs = append(errs, m.Search.Close())
		m.Search = nil
	}
	var checked uint64
	if m.Store != nil {
		checked = m.Store.Checked()
		errs = append(errs, m.Store.Close())
		m.Store = nil
	}
	if m.DB != nil {
		if checked > 0 {
			// How far the log was read back whole: the next start reads it only past there.
			if err := m.DB.SetLogChecked(checked); err != nil {
				m.Logger.Warn("record how far the log was checked", "err", err)
			}
		}
		errs = append(errs, m.DB.Close())
		m.DB = nil
	}
	errs = append(errs, m.lock.unlock())
	m.lock = nil
	return errors.Join(errs...)
}
