// Package handlers holds the edges of memledger that react: the HTTP API and the subscribers
// with side effects.
package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/auth"
	"github.com/memledger/memledger/handlers/backup"
	"github.com/memledger/memledger/handlers/feed"
	"github.com/memledger/memledger/handlers/jobs"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/handlers/sinks"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/memledger/memledger/projections"
)

// Limits and defaults of the HTTP API.
const (
	MaxBodyBytes = 1 << 20
	DefaultActor = "api-http"
	DefaultLimit = 50
	MaxLimit     = 500
	problemJSON  = "application/problem+json"
)

// Server serves the HTTP API. Make it with NewServer, change its fields, then use Handler. It writes only through
// Ledger; Store, DB and Runner serve the reads.
type Server struct {
	// Ledger carries out every command.
	Ledger *ledger.Ledger
	// Auth authenticates every request and the route table says what its role may do; nil
	// runs without authentication (--auth off, loopback only).
	Auth *auth.Authenticator
	// AllowedHosts are the hostnames a request's Host may name (any port); others are refused
	// with a 421. Empty allows every Host.
	AllowedHosts []string
	Store        *eventstore.Store
	DB           *projections.DB
	Runner       *projections.Runner
	// ReadWait bounds how long a read waits for the projections to reach the position it must
	// reflect (DefaultReadWait when 0); see gateRead.
	ReadWait time.Duration
	// Search is the full-text index of memories (GET /memory/search).
	Search *projections.Search
	// LogDamage, when set and returning an error, refuses every request but /health,
	// /metrics and /openapi.json with a 503 naming it: the log check in the background found
	// events lost from the log, which a start would refuse to serve.
	LogDamage func() error
	Rules     domain.Rules
	// Pipeline holds the thresholds of the pipeline alert rules.
	Pipeline jobs.PipelineRules
	// Jobs holds the default thresholds of auto-promotion and candidate expiry.
	Jobs jobs.Rules
	// Nightly is the nightly pipeline that POST /admin/nightly/run runs.
	Nightly *jobs.Nightly
	// MCP, when set, serves the Model Context Protocol's streamable HTTP transport at /mcp.
	MCP http.Handler
	// Sinks are the alert sinks whose state /health reports.
	Sinks []*sinks.Runner
	// Subscriptions runs the webhook subscriptions; Keyring seals their secrets.
	Subscriptions *subscriptions.Manager
	Keyring       *subscriptions.Keyring
	// Backup is what POST /admin/backup takes a backup of; nil answers 503.
	Backup  *backup.Source
	Version string
	// Now is the clock commands are stamped with.
	Now    func() time.Time
	Logger *slog.Logger

	// Feed serves the change feed (GET /events); Handler sets what is not set.
	Feed *feed.Server

	metricsOnce sync.Once
	metricSet   *metrics

	streamsOnce sync.Once
	streamsCtx  context.Context
	endStreams  context.CancelFunc
}

func (s *Server) streams() context.Context {
	s.streamsOnce.Do(func() { s.streamsCtx, s.endStreams = context.WithCancel(context.Background()) })
	return s.streamsCtx
}

// EndStreams ends the long-lived answers (the alert watch streams), so that a shutdown does
// not wait for their clients to go away.
func (s *Server) EndStreams() {
	s.streams()
	s.endStreams()
}

// NewServer returns a Server that writes through l and reads from l's store and views and
// from runner, with the defaults: the clock time.Now, slog's default logger, l's rules and
// the default job and pipeline thresholds. Change its fields before Handler.
func NewServer(l *ledger.Ledger, runner *projections.Runner) *Server {
	return &Server{Ledger: l, Store: l.Store, DB: l.DB, Runner: runner, Rules: l.Rules,
		Jobs: jobs.DefaultRules(), Pipeline: jobs.DefaultPipelineRules(), Now: time.Now, Logger: slog.Default()}
}

// Handler returns the API's routes. It changes nothing in s but the metrics, made once and
// shared with MetricsHandler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /memory", s.createMemory)
	mux.HandleFunc("GET /memory", s.listMemories)
	mux.HandleFunc("GET /memory/search", s.searchMemories)
	mux.HandleFunc("GET /memory/{id}", s.getMemory)
	mux.HandleFunc("PUT /memory/{id}", s.updateMemory)
	mux.HandleFunc("DELETE /memory/{id}", s.invalidateMemory)
	mux.HandleFunc("POST /memory/{id}/promote", s.promoteMemory)
	mux.HandleFunc("POST /memory/{id}/reject", s.rejectMemory)
	mux.HandleFunc("POST /memory/{id}/invalidate", s.invalidateMemory)
	mux.HandleFunc("POST /memory/{id}/supersede", s.supersedeMemory)
	mux.HandleFunc("POST /memory/{id}/reinforce", s.reinforceMemory)
	mux.HandleFunc("GET /memory/{id}/audit", s.memoryAudit)
	mux.HandleFunc("POST /admin/memory/auto-promote", s.autoPromote)
	mux.HandleFunc("POST /admin/memory/expire-candidates", s.expireCandidates)
	mux.HandleFunc("GET /admin/audit/recent", s.recentAudit)
	mux.HandleFunc("POST /admin/alerts", s.postAlert)
	mux.HandleFunc("GET /admin/alerts", s.listAlerts)
	mux.HandleFunc("GET /admin/alerts/watch", s.watchAlerts)
	mux.HandleFunc("POST /admin/alerts/redeliver", s.redeliverAlerts)
	mux.HandleFunc("POST /admin/harness", s.postHarness)
	mux.HandleFunc("POST /admin/pipeline/check", s.postPipelineCheck)
	mux.HandleFunc("POST /admin/backup", s.postBackup)
	mux.HandleFunc("POST /admin/revert", s.postRevert)
	mux.HandleFunc("POST /admin/shadow", s.postShadow)
	mux.HandleFunc("POST /projects", s.registerProject)
	mux.HandleFunc("GET /projects", s.listProjects)
	mux.HandleFunc("GET /projects/{id}", s.getProject)
	mux.HandleFunc("PUT /projects/{id}", s.updateProject)
	mux.HandleFunc("POST /project/state", s.setState)
	mux.HandleFunc("GET /project/state", s.listState)
	mux.HandleFunc("DELETE /project/state", s.invalidateState)
	mux.HandleFunc("GET /project/state/audit", s.stateAudit)
	mux.HandleFunc("POST /documents", s.recordDocument)
	mux.HandleFunc("GET /documents/{id}", s.getDocument)
	mux.HandleFunc("DELETE /documents/{id}", s.deleteDocument)
	mux.HandleFunc("POST /documents/{id}/chunks", s.addChunks)
	mux.HandleFunc("GET /admin/integrity", s.getIntegrity)
	mux.HandleFunc("POST /admin/integrity/run", s.postIntegrityRun)
	mux.HandleFunc("POST /admin/nightly/run", s.postNightlyRun)
	mux.HandleFunc("GET /admin/nightly", s.listNightly)
	mux.HandleFunc("GET /admin/dashboard", s.getDashboard)
	mux.HandleFunc("POST /admin/subscriptions", s.registerSubscription)
	mux.HandleFunc("GET /admin/subscriptions", s.listSubscriptions)
	mux.HandleFunc("GET /admin/subscriptions/{id}", s.getSubscription)
	mux.HandleFunc("DELETE /admin/subscriptions/{id}", s.subscriptionAction(domain.ActionRemove))
	mux.HandleFunc("POST /admin/subscriptions/{id}/pause", s.subscriptionAction(domain.ActionPause))
	mux.HandleFunc("POST /admin/subscriptions/{id}/resume", s.subscriptionAction(domain.ActionResume))
	mux.HandleFunc("POST /admin/subscriptions/{id}/reset", s.resetSubscription)
	mux.Handle("GET /events", s.changeFeed())
	if s.MCP != nil {
		mux.Handle("/mcp", s.MCP)
	}
	mux.HandleFunc("POST /admin/tokens", s.issueToken)
	mux.HandleFunc("GET /admin/tokens", s.listTokens)
	mux.HandleFunc("DELETE /admin/tokens/{name}", s.revokeToken)
	mux.HandleFunc("GET /ui/signin", s.signInPage)
	mux.HandleFunc("POST /ui/signin", s.signIn)
	mux.HandleFunc("POST /ui/signout", s.signOut)
	m := s.metrics()
	mux.Handle("GET /metrics", m.handler())
	s.routeUI(mux)
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /openapi.json", s.openAPI)
	// Browsers' cross-site writes are refused, so that a page elsewhere cannot post a decision
	// in the operator's name; clients that are not browsers are not affected.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.problem(w, r, http.StatusForbidden, "cross-origin request refused: a page of another site may not write here", "")
	}))
	guarded := cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if pattern == "" {
			s.noRoute(w, r, mux)
			return
		}
		// Refusals (401, 403, 503 while catching up, a bad query) are counted with the
		// route's answers.
		m.observe(pattern, w, r, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.serveRoute(w, r, mux, pattern)
		}))
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.guardHost(w, r) {
			guarded.ServeHTTP(w, r)
		}
	})
}

// serveRoute serves a request for route pattern: it waits for the projections' catch-up,
// authorizes the caller, checks the query and gates a read, then lets mux's handler answer.
func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request, mux *http.ServeMux, pattern string) {
	if err := s.logDamage(); err != nil && !damageServed[pattern] {
		detail := err.Error()
		if s.Auth != nil {
			// The report names positions and projections: for a reader's eyes only.
			if c, aerr := s.Auth.Authenticate(r); aerr != nil || auth.Require(c, domain.RoleReader) != nil {
				detail = "the log check found damage in the log: memledger refuses every request until an operator acts (a reader's token sees the report)"
			}
		}
		s.problem(w, r, http.StatusServiceUnavailable, detail, "")
		return
	}
	if isRead(pattern) || !notReads[pattern] && s.Auth != nil {
		// Who is calling is read from the projections too (the tokens): no request is
		// authenticated on projections that are catching up after a start.
		if !s.waitCatchUp(w, r, pattern) {
			return
		}
	}
	if r = s.authorize(w, r, pattern); r == nil {
		return
	}
	if routes[pattern].stream && s.Auth != nil {
		if _, ok := auth.CallerFrom(r.Context()); ok {
			// A stream ends once its credentials no longer authenticate.
			ctx, release := s.Auth.Hold(r)
			defer release()
			r = r.WithContext(ctx)
		}
	}
	if err := checkRouteQuery(pattern, r.URL.Query()); err != nil {
		s.refuseQuery(w, r, pattern, err)
		return
	}
	if isRead(pattern) {
		asked, _ := s.minSeq(r)
		if !s.gateRead(w, r, pattern) {
			return
		}
		if asked > 0 && s.Auth != nil {
			// The read waited for a position: the caller is authenticated again there, so
			// that a revocation the client knows of (its seq as min_seq) is honoured by an
			// instance whose projections had not applied it yet.
			if r = s.authorize(w, r, pattern); r == nil {
				return
			}
		}
	}
	mux.ServeHTTP(w, r)
}

// damageServed are the routes answered on a damaged log: what says how the service is.
var damageServed = map[string]bool{"GET /health": true, "GET /metrics": true, "GET /openapi.json": true}

// logDamage is LogDamage's error, nil without it.
func (s *Server) logDamage() error {
	if s.LogDamage == nil {
		return nil
	}
	return s.LogDamage()
}

// changeFeed returns the change feed's handler, with the API's log, projections and errors.
func (s *Server) changeFeed() *feed.Server {
	if s.Feed == nil {
		s.Feed = &feed.Server{}
	}
	f := s.Feed
	f.Store, f.DB, f.WaitApplied, f.Fail, f.Done = s.Store, s.DB, s.waitRead, s.fail, s.streams()
	if f.Logger == nil {
		f.Logger = s.Logger
	}
	return f
}

// noRoute answers a request no route takes as a problem: 405 with Allow when the path exists
// with other methods, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		s.problem(w, r, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path), "")
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	s.problem(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s is not supported; use %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")), "")
}

// Errors of the HTTP layer, mapped to statuses by statusOf with the domain's.
var (
	errUnsupportedMedia = errors.New("unsupported media type")
	errBodyTooLarge     = errors.New("body too large")
)

// statusOf is the one table from errors to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, domain.ErrInsufficientStorage), errors.Is(err, syscall.ENOSPC):
		return http.StatusInsufficientStorage
	case errors.Is(err, ledger.ErrUnwritable), errors.Is(err, projections.ErrUnwritable):
		return http.StatusServiceUnavailable
	case errors.Is(err, domain.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, domain.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, domain.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, domain.ErrPrecondition):
		return http.StatusPreconditionFailed
	case errors.Is(err, errBodyTooLarge), errors.Is(err, domain.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, domain.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ledger.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, errUnsupportedMedia):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ledger.ErrNotVisible), errors.Is(err, errReadBehind), feed.IsUnavailable(err):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers err as a problem; only server errors are logged.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	detail, field := err.Error(), ""
	var fe *domain.FieldError
	if errors.As(err, &fe) {
		detail, field = fe.Error(), fe.Field
		if field == "actor" {
			// The API takes the caller's actor from the X-Actor header.
			field, detail = "X-Actor", "X-Actor: "+fe.Reason
		}
	}
	switch status {
	case http.StatusInternalServerError:
		s.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		detail = "internal error; see the server log"
	case http.StatusServiceUnavailable, http.StatusInsufficientStorage:
		s.Logger.Warn("request answered "+strconv.Itoa(status), "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
	}
	s.problem(w, r, status, detail, field)
}

type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
	Field    string `json:"field,omitempty"`
}

func (s *Server) problem(w http.ResponseWriter, r *http.Request, status int, detail, field string) {
	w.Header().Set("Content-Type", problemJSON)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(status),
		Status: status, Detail: detail, Instance: r.URL.Path, Field: field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeRaw(w http.ResponseWriter, status int, data []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data)
	w.Write([]byte("\n"))
}

// decodeBody reads the request's JSON object into dst. An empty body leaves dst as it is when
// optional is true. Unknown fields, wrong types, trailing data, other media types and bodies
// over MaxBodyBytes are refused with an error that says which.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return fmt.Errorf("%w: Content-Type %q; send application/json", errUnsupportedMedia, ct)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if errors.Is(err, io.EOF) && optional {
		return nil
	}
	if err == nil && dec.More() {
		err = errors.New("body must hold a single JSON object")
	} else if err == nil {
		if _, tail := dec.Token(); tail != io.EOF {
			err = errors.New("body must hold a single JSON object")
		}
	}
	return bodyError(err)
}

func bodyError(err error) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		maxBytes  *http.MaxBytesError
		fieldErr  *domain.FieldError
		unmarshal *json.InvalidUnmarshalError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &maxBytes):
		return fmt.Errorf("%w: the body is over %d bytes", errBodyTooLarge, MaxBodyBytes)
	case errors.As(err, &fieldErr):
		return err
	case errors.As(err, &syntax):
		return domain.Invalid("body", "malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return domain.Invalid(field, "expected %s, got a JSON %s", jsonKind(typeErr.Type), typeErr.Value)
	case errors.Is(err, io.EOF):
		return domain.Invalid("body", "is empty; expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return domain.Invalid("body", "malformed JSON: unexpected end")
	case errors.As(err, &unmarshal):
		return err
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return domain.Invalid(strings.Trim(f, `"`), "unknown field")
	}
	return domain.Invalid("body", "%v", err)
}

// jsonKind names the JSON value a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(jsonKind(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "a JSON object"
	}
	return t.String()
}

// optionalTime is a JSON time that knows whether it was given (a null clears).
type optionalTime struct {
	Set   bool
	Value *time.Time
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *optionalTime) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Value = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return domain.Invalid("valid_until", "must be an RFC 3339 time string or null")
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return domain.Invalid("valid_until", "%q is not an RFC 3339 time (like 2026-12-31T00:00:00Z)", s)
	}
	o.Value = &t
	return nil
}

// caller is who request r acts for: the actor from X-Actor (defaultActor when absent) and the
// correlation id from X-Correlation-ID; without authentication (--auth off) every request is
// an admin's, as the route table then checks no role.
func caller(r *http.Request, defaultActor string) ledger.Caller {
	if c, ok := auth.CallerFrom(r.Context()); ok {
		// Authenticated: the actor is the principal, or whom it acts for (checked already).
		return c
	}
	actor := r.Header.Get("X-Actor")
	if actor == "" {
		actor = defaultActor
	}
	return ledger.Caller{Actor: actor, CorrelationID: r.Header.Get("X-Correlation-ID"), Role: domain.RoleAdmin}
}

// plainCaller is the caller of a request that is not a memory write: those take neither an
// Idempotency-Key nor an If-Match, and say so rather than ignore them.
func plainCaller(r *http.Request, defaultActor string) (ledger.Caller, error) {
	for _, h := range []string{"Idempotency-Key", "If-Match"} {
		if r.Header.Get(h) != "" {
			return ledger.Caller{}, domain.Invalid(h, "is supported on memory writes only (/memory and /memory/{id}/...)")
		}
	}
	return caller(r, defaultActor), nil
}

// memoryOptions are the Idempotency-Key and If-Match of a memory write.
func memoryOptions(r *http.Request) (ledger.MemoryOptions, error) {
	im, err := ifMatch(r)
	return ledger.MemoryOptions{IdempotencyKey: r.Header.Get("Idempotency-Key"), IfMatch: im}, err
}

// ifMatch parses an If-Match header holding a version ("12", "\"12\"" or W/"12").
func ifMatch(r *http.Request) (*uint64, error) {
	v := r.Header.Get("If-Match")
	if v == "" {
		return nil, nil
	}
	seq, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
	if err != nil {
		return nil, domain.Invalid("If-Match", "%q is not a version; send the ETag of the memory (like \"12\")", v)
	}
	return &seq, nil
}

func etag(seq uint64) string { return `"` + strconv.FormatUint(seq, 10) + `"` }

// queryLimit reads the limit query parameter.
func queryLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, domain.Invalid("limit", "must be a whole number from 1 to %d, got %q", MaxLimit, v)
	}
	return n, nil
}
