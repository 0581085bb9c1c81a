package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers"
	"github.com/memledger/memledger/handlers/feed"
	"github.com/memledger/memledger/handlers/jobs"
	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/memledger/memledger/projections"
)

// Version is memledger's version, reported by /health.
const Version = "0.1.0"

// Config is the configuration every subcommand shares. Each field has a flag and an
// environment variable; the flag wins.
type Config struct {
	Addr    string
	Data    string
	NatsURL string
	// Auth is AuthOn (every request needs a token) or AuthOff (loopback addresses only).
	Auth string
	// AllowedHosts are more hostnames the HTTP API answers to, besides the loopback names and
	// --addr's host (comma-separated).
	AllowedHosts string
	// MetricsAddr, when set, is a listener of its own that serves GET /metrics without a
	// token, for a scraper; the API's /metrics needs a reader's token either way.
	MetricsAddr string
	// ReadTimeout bounds the reading of one request, its body included.
	ReadTimeout  time.Duration
	NatsListen   string
	NatsUser     string
	NatsPassword string
	// NatsPasswordFile, when set, is a file holding the NATS password (its trailing line break
	// dropped), so that the password need not appear on a command line.
	NatsPasswordFile string
	Replicas         int
	Fsync            string
	LogFormat        string
	// ProjectionsSync fsyncs every projection batch (the projections are rebuilt from the log
	// after a crash that damaged them, so by default they are not).
	ProjectionsSync bool
	// AcceptLogLoss makes serve start on a log that lost acknowledged events: the decision is
	// recorded in the log, raises a critical alert, and the projections are built again from
	// what the log holds (see LogLoss).
	AcceptLogLoss bool
	// Force makes rebuild swap in a rebuild that holds fewer events than the file it replaces.
	Force bool

	// AlertLog is the alert log file ("" for <Data>/alerts.log).
	AlertLog string
	// AlertWebhook is the URL alerts are posted to ("" for none).
	AlertWebhook string
	// AlertWebhookAttempts bounds the attempts per alert (0: none but AlertWebhookRetryFor).
	AlertWebhookAttempts int
	// AlertWebhookRetryFor bounds how long one alert is retried before the webhook gives up.
	AlertWebhookRetryFor   time.Duration
	AlertWebhookBackoff    time.Duration
	AlertWebhookMaxBackoff time.Duration
	AlertWebhookTimeout    time.Duration
	MinPassRate            float64
	MaxCandidates          int
	// MaxContent is the longest a memory's content may be, in characters.
	MaxContent int
	// AutoPromoteRefs, AutoPromoteConfidence and CandidateMaxAgeDays are the default
	// thresholds of the automatic jobs.
	AutoPromoteRefs       int
	AutoPromoteConfidence float64
	CandidateMaxAgeDays   float64
	// SubscriptionKeyFile is the key file the subscriptions' secrets are sealed with (""
	// for <Data>/subscription-secrets.key).
	SubscriptionKeyFile string
	// SubscriptionBackoff and SubscriptionMaxBackoff are the waits between a subscription's
	// attempts (doubled after each); SubscriptionTimeout bounds one attempt.
	SubscriptionBackoff, SubscriptionMaxBackoff, SubscriptionTimeout time.Duration
	// FeedStallTimeout is how long the change feed waits for a reader that does not keep up
	// before it cuts it; FeedBufferBytes bounds what one feed holds for its reader.
	FeedStallTimeout time.Duration
	FeedBufferBytes  int
	// CacheBytes is the byte budget of the decoded-state cache of the memories projection.
	CacheBytes int64
	// MemoryLimit is serve's soft memory limit for the Go runtime, in bytes: 0 for CacheBytes
	// plus DefaultMemoryBase, -1 for none (GOMEMLIMIT, when set, wins).
	MemoryLimit int64
	// RebuildSearch makes rebuild build the search index too (rebuild --search).
	RebuildSearch bool
	// ReadWait bounds how long a read waits for the projections to reach the position it must
	// reflect (the log's at start while they catch up, or its min_seq) before it answers 503.
	ReadWait time.Duration
	// NightlyAt is the UTC time ("03:00") the nightly pipeline runs at; "" disables it.
	NightlyAt string
}

// DefaultConfig is the configuration with every default and no environment.
func DefaultConfig() Config {
	rules := jobs.DefaultPipelineRules()
	return Config{Addr: "127.0.0.1:8100", Data: "./data", Auth: AuthOn, ReadTimeout: 30 * time.Second, Replicas: 1, Fsync: eventstore.FsyncAlways, LogFormat: "auto",
		AlertWebhookRetryFor: 24 * time.Hour, AlertWebhookBackoff: 500 * time.Millisecond, AlertWebhookMaxBackoff: 5 * time.Minute,
		AlertWebhookTimeout: 10 * time.Second,
		MinPassRate:         rules.MinPassRate, MaxCandidates: rules.MaxCandidates, NightlyAt: "03:00",
		MaxContent:          domain.DefaultMaxContentLength,
		SubscriptionBackoff: subscriptions.DefaultBackoff, SubscriptionMaxBackoff: subscriptions.DefaultMaxBackoff, SubscriptionTimeout: 10 * time.Second, AutoPromoteRefs: domain.DefaultAutoPromoteRefs,
		AutoPromoteConfidence: domain.DefaultAutoPromoteConf, CandidateMaxAgeDays: domain.DefaultCandidateMaxAge.Hours() / 24,
		FeedStallTimeout: feed.DefaultStallTimeout, FeedBufferBytes: feed.DefaultBufferBytes, ReadWait: handlers.DefaultReadWait,
		CacheBytes: projections.DefaultStateCacheBytes}
}

// serveFlags registers the flags only serve has: the projections' sync, the alert sinks and
// rules, the nightly pipeline.
func (c *Config) serveFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Auth, "auth", env("MEMLEDGER_AUTH", d.Auth), "on: every request needs a token; off: none do, allowed on a loopback address only (MEMLEDGER_AUTH)")
	fs.StringVar(&c.AllowedHosts, "allowed-hosts", env("MEMLEDGER_ALLOWED_HOSTS", ""), "more hostnames requests may name in Host, comma-separated, besides localhost, 127.0.0.1, ::1 and --addr's host: the names clients or a reverse proxy use (MEMLEDGER_ALLOWED_HOSTS)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env("MEMLEDGER_METRICS_ADDR", ""), "also serve GET /metrics, without a token, on this host:port (keep it on loopback or a network only the scraper reaches); the API's /metrics needs a reader's token (MEMLEDGER_METRICS_ADDR)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", envDuration("MEMLEDGER_READ_TIMEOUT", d.ReadTimeout), "longest time to read one request, its body included (MEMLEDGER_READ_TIMEOUT)")
	fs.BoolVar(&c.ProjectionsSync, "projections-sync", envBool("MEMLEDGER_PROJECTIONS_SYNC", false), "fsync every projection batch; by default a crash-damaged projection file is rebuilt from the log instead (MEMLEDGER_PROJECTIONS_SYNC)")
	fs.BoolVar(&c.AcceptLogLoss, "accept-log-loss", false, "start even though the log lost acknowledged events: record the decision in the log, raise a critical alert, build the projections again from what the log holds (no variable: decide each time)")
	fs.StringVar(&c.AlertLog, "alert-log", env("MEMLEDGER_ALERT_LOG", ""), "alert log file, one line per alert (default <data>/alerts.log) (MEMLEDGER_ALERT_LOG)")
	fs.StringVar(&c.AlertWebhook, "alert-webhook", env("MEMLEDGER_ALERT_WEBHOOK", ""), "URL alerts are posted to; a Discord webhook URL gets an embed (MEMLEDGER_ALERT_WEBHOOK)")
	fs.IntVar(&c.AlertWebhookAttempts, "alert-webhook-attempts", envInt("MEMLEDGER_ALERT_WEBHOOK_ATTEMPTS", d.AlertWebhookAttempts), "attempts per alert before the webhook gives up and records a delivery failure; 0 bounds them by --alert-webhook-retry-for alone (MEMLEDGER_ALERT_WEBHOOK_ATTEMPTS)")
	fs.DurationVar(&c.AlertWebhookRetryFor, "alert-webhook-retry-for", envDuration("MEMLEDGER_ALERT_WEBHOOK_RETRY_FOR", d.AlertWebhookRetryFor), "how long one alert is retried before the webhook gives up and records a delivery failure; the alerts behind it wait, in order (MEMLEDGER_ALERT_WEBHOOK_RETRY_FOR)")
	fs.DurationVar(&c.AlertWebhookMaxBackoff, "alert-webhook-max-backoff", envDuration("MEMLEDGER_ALERT_WEBHOOK_MAX_BACKOFF", d.AlertWebhookMaxBackoff), "longest wait between two webhook attempts (MEMLEDGER_ALERT_WEBHOOK_MAX_BACKOFF)")
	fs.DurationVar(&c.AlertWebhookBackoff, "alert-webhook-backoff", envDuration("MEMLEDGER_ALERT_WEBHOOK_BACKOFF", d.AlertWebhookBackoff), "wait after the first failed webhook attempt, doubled after each (MEMLEDGER_ALERT_WEBHOOK_BACKOFF)")
	fs.DurationVar(&c.AlertWebhookTimeout, "alert-webhook-timeout", envDuration("MEMLEDGER_ALERT_WEBHOOK_TIMEOUT", d.AlertWebhookTimeout), "timeout of one webhook request (MEMLEDGER_ALERT_WEBHOOK_TIMEOUT)")
	fs.Float64Var(&c.MinPassRate, "min-pass-rate", envFloat("MEMLEDGER_MIN_PASS_RATE", d.MinPassRate), "pipeline rule: a harness pass rate below this raises a warning (MEMLEDGER_MIN_PASS_RATE)")
	fs.IntVar(&c.MaxContent, "max-content", envInt("MEMLEDGER_MAX_CONTENT", d.MaxContent), "longest content of a memory, in characters (MEMLEDGER_MAX_CONTENT)")
	fs.IntVar(&c.AutoPromoteRefs, "auto-promote-refs", envInt("MEMLEDGER_AUTO_PROMOTE_REFS", d.AutoPromoteRefs), "auto-promote: candidates reinforced at least this often (MEMLEDGER_AUTO_PROMOTE_REFS)")
	fs.Float64Var(&c.AutoPromoteConfidence, "auto-promote-confidence", envFloat("MEMLEDGER_AUTO_PROMOTE_CONFIDENCE", d.AutoPromoteConfidence), "auto-promote: and at least this confident (MEMLEDGER_AUTO_PROMOTE_CONFIDENCE)")
	fs.Float64Var(&c.CandidateMaxAgeDays, "candidate-max-age-days", envFloat("MEMLEDGER_CANDIDATE_MAX_AGE_DAYS", d.CandidateMaxAgeDays), "expiry: candidates never reinforced and older than this many days (MEMLEDGER_CANDIDATE_MAX_AGE_DAYS)")
	fs.DurationVar(&c.FeedStallTimeout, "feed-stall-timeout", envDuration("MEMLEDGER_FEED_STALL_TIMEOUT", d.FeedStallTimeout), "change feed: cut a reader whose buffer stays full this long (MEMLEDGER_FEED_STALL_TIMEOUT)")
	fs.IntVar(&c.FeedBufferBytes, "feed-buffer", envInt("MEMLEDGER_FEED_BUFFER", d.FeedBufferBytes), "change feed: bytes of events one feed holds for its reader (MEMLEDGER_FEED_BUFFER)")
	fs.Int64Var(&c.CacheBytes, "cache-bytes", envInt64("MEMLEDGER_CACHE_BYTES", d.CacheBytes), "byte budget of the decoded-memory cache of the projections; 0 for none (MEMLEDGER_CACHE_BYTES)")
	fs.Int64Var(&c.MemoryLimit, "memory-limit", envInt64("MEMLEDGER_MEMORY_LIMIT", d.MemoryLimit), "soft limit of the memory the Go runtime holds, in bytes; 0 for --cache-bytes plus 192 MiB, raised to 2.5 times the live heap when twice that does not fit (see README, Memory), -1 for none; GOMEMLIMIT, when set, wins (MEMLEDGER_MEMORY_LIMIT)")
	fs.DurationVar(&c.ReadWait, "read-wait", envDuration("MEMLEDGER_READ_WAIT", d.ReadWait), "longest a read waits for the projections to reach the position it must reflect (the log's at start while they catch up, or its min_seq) before it answers 503 with Retry-After (MEMLEDGER_READ_WAIT)")
	fs.StringVar(&c.NightlyAt, "nightly-at", env("MEMLEDGER_NIGHTLY_AT", d.NightlyAt), "UTC time the nightly pipeline runs every day; empty disables it (MEMLEDGER_NIGHTLY_AT)")
	fs.StringVar(&c.SubscriptionKeyFile, "subscription-key-file", env("MEMLEDGER_SUBSCRIPTION_KEY_FILE", ""), "key file the subscriptions' secrets are sealed with, made on first use (default <data>/subscription-secrets.key) (MEMLEDGER_SUBSCRIPTION_KEY_FILE)")
	fs.DurationVar(&c.SubscriptionBackoff, "subscription-backoff", envDuration("MEMLEDGER_SUBSCRIPTION_BACKOFF", d.SubscriptionBackoff), "wait after a subscription's first failed delivery, doubled after each (MEMLEDGER_SUBSCRIPTION_BACKOFF)")
	fs.DurationVar(&c.SubscriptionMaxBackoff, "subscription-max-backoff", envDuration("MEMLEDGER_SUBSCRIPTION_MAX_BACKOFF", d.SubscriptionMaxBackoff), "longest wait between a subscription's attempts (MEMLEDGER_SUBSCRIPTION_MAX_BACKOFF)")
	fs.DurationVar(&c.SubscriptionTimeout, "subscription-timeout", envDuration("MEMLEDGER_SUBSCRIPTION_TIMEOUT", d.SubscriptionTimeout), "timeout of one subscription delivery (MEMLEDGER_SUBSCRIPTION_TIMEOUT)")
	fs.IntVar(&c.MaxCandidates, "max-candidates", envInt("MEMLEDGER_MAX_CANDIDATES", d.MaxCandidates), "pipeline rule: more candidates than this raise a warning (MEMLEDGER_MAX_CANDIDATES)")
}

// check refuses settings out of range, naming the flag.
func (c Config) check() error {
	switch {
	case c.MaxContent < 1 || c.MaxContent > 100_000:
		return fmt.Errorf("max-content must be between 1 and 100000, got %d", c.MaxContent)
	case c.CacheBytes < 0:
		return fmt.Errorf("cache-bytes must be 0 or more, got %d", c.CacheBytes)
	case c.MemoryLimit < -1:
		return fmt.Errorf("memory-limit must be -1 (none), 0 (--cache-bytes plus 192 MiB) or a number of bytes, got %d", c.MemoryLimit)
	case c.MemoryLimit > 0 && c.MemoryLimit < c.CacheBytes+minMemoryBase:
		return fmt.Errorf("memory-limit %d is less than --cache-bytes (%d) plus the %d bytes memledger needs besides: the garbage collector would run without end", c.MemoryLimit, c.CacheBytes, int64(minMemoryBase))
	case c.ReadWait <= 0:
		return fmt.Errorf("read-wait must be more than 0, got %s", c.ReadWait)
	case c.AutoPromoteRefs < 1:
		return fmt.Errorf("auto-promote-refs must be at least 1, got %d", c.AutoPromoteRefs)
	case !(c.AutoPromoteConfidence >= 0 && c.AutoPromoteConfidence <= 1):
		return fmt.Errorf("auto-promote-confidence must be between 0 and 1, got %v", c.AutoPromoteConfidence)
	case !(c.CandidateMaxAgeDays > 0):
		return fmt.Errorf("candidate-max-age-days must be more than 0, got %v", c.CandidateMaxAgeDays)
	case !(c.MinPassRate >= 0 && c.MinPassRate <= 1):
		return fmt.Errorf("min-pass-rate must be between 0 and 1, got %v", c.MinPassRate)
	case c.SubscriptionBackoff <= 0 || c.SubscriptionMaxBackoff < c.SubscriptionBackoff:
		return fmt.Errorf("subscription-backoff must be more than 0 and at most subscription-max-backoff, got %s and %s", c.SubscriptionBackoff, c.SubscriptionMaxBackoff)
	case c.AlertWebhookAttempts < 0 || c.AlertWebhookRetryFor <= 0:
		return fmt.Errorf("alert-webhook-attempts must not be negative and alert-webhook-retry-for must be more than 0, got %d and %s", c.AlertWebhookAttempts, c.AlertWebhookRetryFor)
	case c.AlertWebhookBackoff <= 0 || c.AlertWebhookMaxBackoff < c.AlertWebhookBackoff:
		return fmt.Errorf("alert-webhook-backoff must be more than 0 and at most alert-webhook-max-backoff, got %s and %s", c.AlertWebhookBackoff, c.AlertWebhookMaxBackoff)
	case c.SubscriptionTimeout <= 0:
		return fmt.Errorf("subscription-timeout must be more than 0, got %s", c.SubscriptionTimeout)
	case c.FeedStallTimeout <= 0:
		return fmt.Errorf("feed-stall-timeout must be more than 0, got %s", c.FeedStallTimeout)
	case c.FeedBufferBytes < 4096:
		return fmt.Errorf("feed-buffer must be at least 4096 bytes, got %d", c.FeedBufferBytes)
	case c.MaxCandidates < 0:
		return fmt.Errorf("max-candidates must not be negative, got %d", c.MaxCandidates)
	}
	return nil
}

// SubscriptionKeyPath is the subscriptions' key file.
func (c Config) SubscriptionKeyPath() string {
	if c.SubscriptionKeyFile != "" {
		return c.SubscriptionKeyFile
	}
	return filepath.Join(c.Data, subscriptions.KeyFileName)
}

// AlertLogPath is the alert log file.
func (c Config) AlertLogPath() string {
	if c.AlertLog != "" {
		return c.AlertLog
	}
	return filepath.Join(c.Data, "alerts.log")
}

// flags registers the shared flags on fs, their defaults read from the environment.
func (c *Config) flags(fs *flag.FlagSet, withAddr bool) {
	d := DefaultConfig()
	if withAddr {
		fs.StringVar(&c.Addr, "addr", env("MEMLEDGER_ADDR", d.Addr), "HTTP listen address (MEMLEDGER_ADDR)")
	}
	fs.StringVar(&c.Data, "data", env("MEMLEDGER_DATA", d.Data), "data directory: the embedded log and the projections (MEMLEDGER_DATA)")
	fs.StringVar(&c.NatsURL, "nats-url", env("MEMLEDGER_NATS_URL", ""), "external NATS server or cluster URL; empty embeds a server (MEMLEDGER_NATS_URL)")
	fs.StringVar(&c.NatsListen, "nats-listen", env("MEMLEDGER_NATS_LISTEN", ""), "let NATS clients connect to the embedded server on this host:port (MEMLEDGER_NATS_LISTEN)")
	fs.StringVar(&c.NatsUser, "nats-user", env("MEMLEDGER_NATS_USER", ""), "NATS user name, required of clients of the embedded server and sent to an external one (MEMLEDGER_NATS_USER)")
	fs.StringVar(&c.NatsPassword, "nats-password", env("MEMLEDGER_NATS_PASSWORD", ""), "NATS password; prefer the variable or --nats-password-file, which do not show in the process list (MEMLEDGER_NATS_PASSWORD)")
	fs.StringVar(&c.NatsPasswordFile, "nats-password-file", env("MEMLEDGER_NATS_PASSWORD_FILE", ""), "file holding the NATS password (MEMLEDGER_NATS_PASSWORD_FILE)")
	fs.IntVar(&c.Replicas, "replicas", envInt("MEMLEDGER_REPLICAS", d.Replicas), "stream replicas on an external cluster (MEMLEDGER_REPLICAS)")
	fs.StringVar(&c.Fsync, "fsync", env("MEMLEDGER_FSYNC", d.Fsync), "embedded server's disk sync: always (every event on disk before its ack) or interval (MEMLEDGER_FSYNC)")
	fs.StringVar(&c.LogFormat, "log-format", env("MEMLEDGER_LOG_FORMAT", d.LogFormat), "log format: auto (text on a terminal, else JSON), text or json (MEMLEDGER_LOG_FORMAT)")
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, ok := os.LookupEnv(key); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "memledger: ignoring %s=%q: not a whole number\n", key, v)
	}
	return def
}

func envInt64(key string, def int64) int64 {
	if v, ok := os.LookupEnv(key); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "memledger: ignoring %s=%q: not a whole number\n", key, v)
	}
	return def
}

func envBool(key string, def bool) bool {
	if v, ok := os.LookupEnv(key); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
		fmt.Fprintf(os.Stderr, "memledger: ignoring %s=%q: not true or false\n", key, v)
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(key); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "memledger: ignoring %s=%q: not a duration like 500ms\n", key, v)
	}
	return def
}

func envFloat(key string, def float64) float64 {
	if v, ok := os.LookupEnv(key); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
		fmt.Fprintf(os.Stderr, "memledger: ignoring %s=%q: not a number\n", key, v)
	}
	return def
}

// natsPassword is the NATS password: NatsPassword, or what NatsPasswordFile holds.
func (c Config) natsPassword() (string, error) {
	if c.NatsPasswordFile == "" {
		return c.NatsPassword, nil
	}
	if c.NatsPassword != "" {
		return "", errors.New("nats password: set --nats-password or --nats-password-file, not both")
	}
	b, err := os.ReadFile(c.NatsPasswordFile)
	if err != nil {
		return "", fmt.Errorf("nats password file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("nats password file %s is empty", c.NatsPasswordFile)
	}
	return pw, nil
}

// store returns the event store the configuration describes.
func (c Config) store(logger *slog.Logger) (*eventstore.Store, error) {
	pw, err := c.natsPassword()
	if err != nil {
		return nil, err
	}
	s := eventstore.New(c.Data)
	s.URL, s.Listen, s.User, s.Password = c.NatsURL, c.NatsListen, c.NatsUser, pw
	s.Replicas, s.Fsync, s.Logger = c.Replicas, c.Fsync, logger
	return s, nil
}

// ProjectionsPath is the projection file in the data directory.
func (c Config) ProjectionsPath() string { return filepath.Join(c.Data, "projections.db") }

// SearchPath is the search index's directory in the data directory.
func (c Config) SearchPath() string { return filepath.Join(c.Data, "search.bleve") }

// logger returns the logger the configuration asks for, writing to w.
func (c Config) logger(w io.Writer) (*slog.Logger, error) {
	format := c.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("log-format must be auto, text or json, got %q", c.LogFormat)
}
