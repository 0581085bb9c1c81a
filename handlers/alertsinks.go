package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/nats-io/nats.go/jetstream"
)

// Sink delivers alerts to one destination.
type Sink interface {
	// Name is the sink's stable name; its durable position in the log is kept under it.
	Name() string
	// Deliver delivers one alert. A PermanentError is not retried.
	Deliver(ctx context.Context, a domain.Alert) error
}

// PermanentError is a delivery failure that retrying cannot mend.
type PermanentError struct{ Err error }

// Error implements error.
func (e PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e PermanentError) Unwrap() error { return e.Err }

// SinkRunner feeds one sink from its own durable consumer of the log's alerts, one alert at a
// time, so that a failing sink holds back only itself. An alert is acknowledged once
// delivered; after a restart the sink resumes after the last one it acknowledged. A sink
// first started sees the alerts raised from then on, never older ones.
type SinkRunner struct {
	Sink   Sink
	Stream jetstream.Stream
	// Attempts is how many times an alert is tried before giving up (0: until delivered).
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after each, up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// GiveUp records an alert the sink gave up on.
	GiveUp func(ctx context.Context, a domain.Alert, attempts int, err error)
	Logger *slog.Logger

	mu        sync.Mutex
	delivered uint64
	lastErr   string
	lastErrAt time.Time
}

// SinkStatus is what /health says of a sink.
type SinkStatus struct {
	Delivered uint64     `json:"delivered"`
	LastError string     `json:"last_error,omitempty"`
	LastErrAt *time.Time `json:"last_error_at,omitempty"`
}

// Status returns the sink's counters since the process started.
func (r *SinkRunner) Status() SinkStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := SinkStatus{Delivered: r.delivered, LastError: r.lastErr}
	if !r.lastErrAt.IsZero() {
		t := r.lastErrAt
		st.LastErrAt = &t
	}
	return st
}

// Start creates or updates the sink's durable consumer; Run then delivers.
func (r *SinkRunner) Start(ctx context.Context) (jetstream.Consumer, error) {
	if r.Backoff <= 0 {
		r.Backoff = 100 * time.Millisecond
	}
	if r.MaxBackoff < r.Backoff {
		r.MaxBackoff = max(r.Backoff, 5*time.Second)
	}
	cons, err := r.Stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       "alert-sink-" + r.Sink.Name(),
		Description:   "memledger alert sink " + r.Sink.Name(),
		FilterSubject: eventstore.AlertSubjects,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 1,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("alert sink %s: consumer: %w", r.Sink.Name(), err)
	}
	return cons, nil
}

// Run delivers alerts from cons until ctx is done.
func (r *SinkRunner) Run(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("alert sink %s: %w", r.Sink.Name(), err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			r.Logger.Warn("alert sink: reading the log failed", "sink", r.Sink.Name(), "err", err)
			continue
		}
		r.handle(ctx, msg)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (r *SinkRunner) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		r.Logger.Error("alert sink: message without metadata", "sink", r.Sink.Name(), "err", err)
		msg.Term()
		return
	}
	ev, err := eventstore.Decode(msg.Data(), meta.Sequence.Stream)
	a, ok := domain.AlertOf(ev)
	if err != nil || !ok {
		r.Logger.Error("alert sink: not an alert", "sink", r.Sink.Name(), "seq", meta.Sequence.Stream, "err", err)
		msg.Term()
		return
	}
	// A delivery under way when the service stops gets a moment to finish, and its
	// acknowledgement is sent whatever happens to ctx: an alert delivered must not be
	// delivered again after a restart.
	dctx, cancel := graceContext(ctx, shutdownGrace)
	defer cancel()
	ack := func(settle func(context.Context) error) {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		if err := settle(actx); err != nil {
			r.Logger.Warn("alert sink: ack failed; the alert may be delivered again", "sink", r.Sink.Name(), "alert", a.ID, "err", err)
		}
	}
	wait := r.Backoff
	for attempt := 1; ; attempt++ {
		err := r.Sink.Deliver(dctx, a)
		if err == nil {
			ack(msg.DoubleAck)
			r.mu.Lock()
			r.delivered++
			r.mu.Unlock()
			return
		}
		r.mu.Lock()
		r.lastErr, r.lastErrAt = err.Error(), time.Now().UTC()
		r.mu.Unlock()
		var perm PermanentError
		if errors.As(err, &perm) || (r.Attempts > 0 && attempt >= r.Attempts) {
			r.Logger.Error("alert sink: giving up", "sink", r.Sink.Name(), "alert", a.ID, "attempts", attempt, "err", err)
			if r.GiveUp != nil {
				r.GiveUp(context.WithoutCancel(ctx), a, attempt, err)
			}
			ack(msg.DoubleAck)
			return
		}
		r.Logger.Warn("alert sink: delivery failed; retrying", "sink", r.Sink.Name(), "alert", a.ID, "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			// Stopping: hand the alert back so that the next start delivers it at once.
			ack(func(context.Context) error { return msg.Nak() })
			return
		case <-time.After(wait):
		}
		msg.InProgress()
		wait = min(2*wait, r.MaxBackoff)
	}
}

// shutdownGrace is how long a delivery under way may go on after the service is asked to stop.
const shutdownGrace = 5 * time.Second

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

// LogSink writes alerts to the structured log, at a level by severity.
type LogSink struct{ Logger *slog.Logger }

// Name implements Sink.
func (LogSink) Name() string { return "log" }

// Deliver implements Sink.
func (s LogSink) Deliver(ctx context.Context, a domain.Alert) error {
	level := slog.LevelInfo
	switch a.Severity {
	case domain.SeverityWarning:
		level = slog.LevelWarn
	case domain.SeverityCritical:
		level = slog.LevelError
	}
	s.Logger.Log(ctx, level, "alert: "+a.Title, "alert_id", a.ID, "severity", a.Severity,
		"message", a.Message, "context", a.Context, "seq", a.Seq)
	return nil
}

// FileSink appends one line per alert to a file and syncs it.
type FileSink struct{ Path string }

// Name implements Sink.
func (FileSink) Name() string { return "file" }

// Deliver implements Sink.
func (s FileSink) Deliver(_ context.Context, a domain.Alert) error {
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return err
	}
	// Alerts may quote what memories hold: the file is the owner's alone, like the data directory.
	f, err := os.OpenFile(s.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(AlertLine(a) + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// MaxLineContext is how many characters of an alert's context JSON its log line keeps.
const MaxLineContext = 500

// AlertLine formats an alert as one line of the alert log:
// [2026-04-16T21:54:10Z] [WARNING] title: message {"context":"as JSON, cut at 500 chars"}
func AlertLine(a domain.Alert) string {
	oneLine := strings.NewReplacer("\r", `\r`, "\n", `\n`)
	line := fmt.Sprintf("[%s] [%s] %s: %s", a.Timestamp.UTC().Format("2006-01-02T15:04:05Z"),
		strings.ToUpper(string(a.Severity)), oneLine.Replace(a.Title), oneLine.Replace(a.Message))
	if len(a.Context) > 0 {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(a.Context)
		line += " " + truncate(strings.TrimSuffix(buf.String(), "\n"), MaxLineContext)
	}
	return line
}

// truncate cuts s to at most n characters.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// WebhookSink posts alerts to a URL: a Discord webhook gets an embed, any other URL the
// alert as JSON.
type WebhookSink struct {
	URL    string
	Client *http.Client
}

// Name implements Sink.
func (WebhookSink) Name() string { return "webhook" }

// IsDiscordWebhook reports whether u is a Discord webhook URL.
func IsDiscordWebhook(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := strings.ToLower(p.Hostname())
	for _, d := range []string{"discord.com", "discordapp.com"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return strings.HasPrefix(p.Path, "/api/webhooks/")
		}
	}
	return false
}

// Discord embed colours by severity.
var discordColours = map[domain.Severity]int{
	domain.SeverityInfo:     0x3498DB,
	domain.SeverityWarning:  0xF1C40F,
	domain.SeverityCritical: 0xE74C3C,
}

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Color       int            `json:"color"`
	Fields      []discordField `json:"fields,omitempty"`
	Timestamp   string         `json:"timestamp"`
}

// DiscordPayload is the body a Discord webhook gets for a: one embed, within Discord's limits.
func DiscordPayload(a domain.Alert) map[string]any {
	e := discordEmbed{
		Title:       truncate("["+strings.ToUpper(string(a.Severity))+"] "+a.Title, 256),
		Description: truncate(a.Message, 4096),
		Color:       discordColours[a.Severity],
		Timestamp:   a.Timestamp.UTC().Format(time.RFC3339),
	}
	for _, k := range sortedKeys(a.Context) {
		if len(e.Fields) == 25 {
			break
		}
		v, ok := a.Context[k].(string)
		if !ok {
			data, _ := json.Marshal(a.Context[k])
			v = string(data)
		}
		e.Fields = append(e.Fields, discordField{Name: truncate(k, 256), Value: truncate(v, 1024), Inline: true})
	}
	// Discord refuses an embed whose texts add up to more than 6,000 characters.
	size := func() int {
		n := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
		for _, f := range e.Fields {
			n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
		}
		return n
	}
	for size() > discordMaxTotal && len(e.Fields) > 0 {
		e.Fields = e.Fields[:len(e.Fields)-1]
	}
	if over := size() - discordMaxTotal; over > 0 {
		e.Description = truncate(e.Description, utf8.RuneCountInString(e.Description)-over)
	}
	return map[string]any{"embeds": []discordEmbed{e}}
}

// discordMaxTotal is Discord's limit on the characters of one embed.
const discordMaxTotal = 6000

// Deliver implements Sink.
func (s WebhookSink) Deliver(ctx context.Context, a domain.Alert) error {
	var body any = a
	if IsDiscordWebhook(s.URL) {
		body = DiscordPayload(a)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return PermanentError{err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(data))
	if err != nil {
		return PermanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "memledger/"+"alerts")
	res, err := s.Client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("webhook answered %s", res.Status)
	if res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusRequestTimeout {
		return PermanentError{err}
	}
	if after, _ := strconv.Atoi(res.Header.Get("Retry-After")); after > 0 && after <= 60 {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(after) * time.Second):
		}
	}
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
