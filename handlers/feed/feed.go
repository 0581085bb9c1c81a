// Package feed serves the change feed, GET /events: the log's events from any position,
// catching up with the past and then following live, as NDJSON or as Server-Sent Events.
package feed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/auth"
	"github.com/memledger/memledger/projections"
)

// Defaults of a Server.
const (
	// DefaultStallTimeout is how long a feed waits for room in its buffer before it cuts a
	// reader that does not keep up.
	DefaultStallTimeout = 30 * time.Second
	// DefaultBufferBytes bounds the events a feed holds for its reader.
	DefaultBufferBytes = 1 << 20
	// DefaultHeartbeat is how often an idle Server-Sent Events feed sends a comment, so that
	// proxies and clients see the connection alive.
	DefaultHeartbeat = 15 * time.Second
	// DefaultMaxFeeds bounds the feeds open at once.
	DefaultMaxFeeds = 256
	// maxFilters bounds the subject and type filters of one feed.
	maxFilters = 32
	// readAhead is how many events a feed pulls from the log ahead of its buffer.
	readAhead = 64
)

// The ways a feed ends, in its last line's "end".
const (
	EndComplete = "complete" // a bounded feed answered everything it was asked
	EndCut      = "cut"      // the reader did not keep up
	EndShutdown = "shutdown" // the service is stopping
	EndError    = "error"    // reading the log failed
	// EndUnauthenticated: the feed's token was revoked or expired, or its session ended.
	EndUnauthenticated = "unauthenticated"
)

// End is the last line of a feed (in Server-Sent Events, the data of an "end" event): why it
// ended, the position of the last event it sent (0 for none), and the position to resume
// from (as from, or Last-Event-ID of NextFrom-1).
type End struct {
	End      string `json:"end"`
	Reason   string `json:"reason,omitempty"`
	LastSeq  uint64 `json:"last_seq"`
	NextFrom uint64 `json:"next_from"`
}

// Server serves GET /events. Set its fields, then use it as a handler.
type Server struct {
	Store *eventstore.Store
	// DB resolves times to log positions (the timeline projection).
	DB *projections.DB
	// WaitApplied waits until the projections have applied position seq.
	WaitApplied func(ctx context.Context, seq uint64) error
	// Fail answers a request with the problem err is (the API's error table).
	Fail func(w http.ResponseWriter, r *http.Request, err error)
	// Done, when set, ends every feed when it is done (the service stopping).
	Done context.Context
	// StallTimeout, BufferBytes, Heartbeat and MaxFeeds default to the constants above.
	StallTimeout time.Duration
	// WriteTimeout bounds one write to a client (twice StallTimeout when 0): a client that
	// reads nothing for that long is disconnected, its last line unsent.
	WriteTimeout time.Duration
	BufferBytes  int
	Heartbeat    time.Duration
	MaxFeeds     int
	Logger       *slog.Logger

	once              sync.Once
	open              atomic.Int64
	held, peak, cut   atomic.Int64
	served, delivered atomic.Int64
}

// Stats are a server's counts since it started.
type Stats struct {
	// Open is the feeds open now.
	Open int64 `json:"open"`
	// HeldBytes is what the open feeds hold for their readers, PeakHeldBytes the most they
	// held at once.
	HeldBytes     int64 `json:"held_bytes"`
	PeakHeldBytes int64 `json:"peak_held_bytes"`
	// Cut counts the readers cut for not keeping up.
	Cut int64 `json:"cut"`
	// Served counts the feeds answered, Delivered the events they sent.
	Served    int64 `json:"served"`
	Delivered int64 `json:"delivered"`
}

// Stats returns the server's counts.
func (s *Server) Stats() Stats {
	return Stats{Open: s.open.Load(), HeldBytes: s.held.Load(), PeakHeldBytes: s.peak.Load(), Cut: s.cut.Load(),
		Served: s.served.Load(), Delivered: s.delivered.Load()}
}

func (s *Server) defaults() {
	s.once.Do(func() {
		if s.StallTimeout <= 0 {
			s.StallTimeout = DefaultStallTimeout
		}
		if s.WriteTimeout <= 0 {
			s.WriteTimeout = 2 * s.StallTimeout
		}
		if s.BufferBytes <= 0 {
			s.BufferBytes = DefaultBufferBytes
		}
		if s.Heartbeat <= 0 {
			s.Heartbeat = DefaultHeartbeat
		}
		if s.MaxFeeds <= 0 {
			s.MaxFeeds = DefaultMaxFeeds
		}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		if s.Done == nil {
			s.Done = context.Background()
		}
	})
}

func (s *Server) hold(delta int) {
	n := s.held.Add(int64(delta))
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// QueryParams are the query parameters GET /events takes; the API's route table declares them
// for the route, and refuses any other before the feed sees the request.
var QueryParams = []string{"from", "to", "limit", "subject", "type"}

// request is a parsed GET /events.
type request struct {
	from uint64
	// end is the last position of a bounded feed; 0 follows the log.
	end      uint64
	bounded  bool
	limit    int
	subjects []string
	types    []string
	sse      bool
}

// errUnavailable is the service refusing more feeds.
var errUnavailable = errors.New("unavailable")

// IsUnavailable reports whether err is a feed refused because too many are open (HTTP 503).
func IsUnavailable(err error) bool { return errors.Is(err, errUnavailable) }

func (s *Server) parse(r *http.Request) (request, error) {
	q := r.URL.Query()
	var req request
	req.sse = acceptsEventStream(r.Header.Get("Accept"))
	last, err := s.Store.LastSeq(r.Context())
	if err != nil {
		return req, err
	}
	req.from = 1
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return req, domain.Invalid("Last-Event-ID", "%q is not an event's id (its log position, a whole number)", v)
		}
		if id > last {
			return req, domain.Invalid("Last-Event-ID", "%d is beyond the log's end (its last event is %d)", id, last)
		}
		req.from = id + 1
	} else if v := q.Get("from"); v == "now" {
		req.from = last + 1
	} else if v != "" {
		p, err := ParsePosition("from", v)
		if err != nil {
			return req, domain.Invalid("from", "%q is neither now, a log position (a whole number, like 42) nor an RFC 3339 time (like 2026-12-01T10:00:00Z)", v)
		}
		switch {
		case p.IsTime():
			if req.from, err = s.firstAfter(r.Context(), p.Time, last); err != nil {
				return req, err
			}
		case p.Seq > last+1:
			return req, domain.Invalid("from", "%d is beyond the log's end (its last event is %d; the next will be %d)", p.Seq, last, last+1)
		default:
			req.from = max(p.Seq, 1)
		}
	}
	if v := q.Get("to"); v != "" {
		p, err := ParsePosition("to", v)
		if err != nil {
			return req, err
		}
		req.bounded = true
		switch {
		case p.IsTime():
			if req.end, err = s.positionAt(r.Context(), p.Time, last); err != nil {
				return req, err
			}
		case p.Seq > last:
			return req, domain.Invalid("to", "%d is beyond the log's end (its last event is %d)", p.Seq, last)
		case p.Seq < req.from && p.Seq != req.from-1:
			return req, domain.Invalid("to", "%d is before from (%d)", p.Seq, req.from)
		default:
			req.end = p.Seq
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return req, domain.Invalid("limit", "must be a whole number of at least 1, got %q", v)
		}
		req.limit, req.bounded = n, true
	}
	if req.bounded && q.Get("to") == "" {
		req.end = last
	}
	req.subjects = q["subject"]
	req.types = q["type"]
	if len(req.subjects) > maxFilters || len(req.types) > maxFilters {
		return req, domain.Invalid("subject", "at most %d subject and %d type filters", maxFilters, maxFilters)
	}
	for _, f := range req.subjects {
		if err := eventstore.CheckFilter(f); err != nil {
			return req, domain.Invalid("subject", "%s", strings.TrimSuffix(err.Error(), ": "+domain.ErrInvalid.Error()))
		}
	}
	known := eventstore.EventTypes()
	for _, t := range req.types {
		if !slices.Contains(known, t) {
			return req, domain.Invalid("type", "unknown event type %q; the types are %s", t, strings.Join(known, ", "))
		}
	}
	if len(req.types) > 0 && len(req.subjects) == 0 {
		// Only the kinds of the types asked for are read.
		for _, t := range req.types {
			kind, _, _ := strings.Cut(t, ".")
			if f := eventstore.SubjectPrefix + kind + ".>"; !slices.Contains(req.subjects, f) {
				req.subjects = append(req.subjects, f)
			}
		}
	}
	return req, nil
}

// firstAfter is the first position at or after t, once the projections have applied the log
// up to last.
func (s *Server) firstAfter(ctx context.Context, t time.Time, last uint64) (uint64, error) {
	if err := s.WaitApplied(ctx, last); err != nil {
		return 0, err
	}
	seq, _, err := s.DB.FirstAfter(t)
	return max(seq, 1), err
}

// positionAt is the last position at or before t, once the projections have applied the log up
// to last.
func (s *Server) positionAt(ctx context.Context, t time.Time, last uint64) (uint64, error) {
	if err := s.WaitApplied(ctx, last); err != nil {
		return 0, err
	}
	seq, _, err := s.DB.PositionAt(t)
	return min(seq, last), err
}

func acceptsEventStream(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
			return true
		}
	}
	return false
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.defaults()
	req, err := s.parse(r)
	if err != nil {
		s.Fail(w, r, err)
		return
	}
	if s.open.Add(1) > int64(s.MaxFeeds) {
		s.open.Add(-1)
		w.Header().Set("Retry-After", "5")
		s.Fail(w, r, fmt.Errorf("%w: %d feeds are open, the most this service serves at once; retry later", errUnavailable, s.MaxFeeds))
		return
	}
	defer s.open.Add(-1)
	s.served.Add(1)
	s.serve(w, r, req)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, req request) {
	if req.sse {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Accel-Buffering", "no")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stopAtShutdown := context.AfterFunc(s.Done, cancel)
	defer stopAtShutdown()
	q := newQueue(s.BufferBytes, s.hold)
	read := make(chan struct{})
	go func() {
		defer close(read)
		q.pushLast(s.produce(ctx, r.Context(), req, q))
	}()
	defer func() {
		cancel()
		<-read
		_, n, _ := q.take()
		q.release(n)
	}()

	out := bufio.NewWriterSize(w, 64<<10)
	heartbeat := time.NewTicker(s.Heartbeat)
	defer heartbeat.Stop()
	clientGone := r.Context().Done()
	write := func(lines [][]byte) error {
		rc.SetWriteDeadline(time.Now().Add(s.WriteTimeout))
		for _, l := range lines {
			if _, err := out.Write(l); err != nil {
				return err
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	for {
		lines, n, done := q.take()
		if done {
			return
		}
		if len(lines) > 0 {
			err := write(lines)
			q.release(n)
			if err != nil {
				return // the client went away, or read nothing for WriteTimeout
			}
			continue
		}
		select {
		case <-q.pushed:
		case <-heartbeat.C:
			if req.sse && write([][]byte{[]byte(": keep-alive\n\n")}) != nil {
				return
			}
		case <-clientGone:
			if auth.Ended(r.Context()) == nil {
				return
			}
			// The feed's credentials ended it: the producer ends it with its last line.
			clientGone = nil
		}
	}
}

// produce reads the log for req into q and returns the feed's last line (nil when the client
// went away).
func (s *Server) produce(ctx, client context.Context, req request, q *queue) []byte {
	var sent, lastRead, count uint64
	lastRead = req.from - 1
	var typed struct {
		Type string `json:"type"`
	}
	err := s.Store.Read(ctx, eventstore.ReadOptions{From: req.from, To: req.end, Subjects: req.subjects,
		Follow: !req.bounded, ReadAhead: readAhead}, func(m eventstore.Message) error {
		if len(req.types) > 0 {
			typed.Type = ""
			if json.Unmarshal(m.Data, &typed) != nil || !slices.Contains(req.types, typed.Type) {
				lastRead = m.Seq
				return nil
			}
		}
		if err := q.push(ctx, s.eventLine(req.sse, m), s.StallTimeout); err != nil {
			return err
		}
		sent, lastRead = m.Seq, m.Seq
		s.delivered.Add(1)
		if count++; req.limit > 0 && count == uint64(req.limit) {
			return eventstore.ErrStop
		}
		return nil
	})
	end := End{LastSeq: sent, NextFrom: lastRead + 1}
	switch {
	case err == nil:
		end.End = EndComplete
		if req.limit == 0 || count < uint64(req.limit) {
			end.NextFrom = max(req.end+1, req.from)
		}
	case errors.Is(err, errStalled):
		s.cut.Add(1)
		end.End = EndCut
		end.Reason = fmt.Sprintf("the reader did not keep up: the feed's buffer (%d bytes) stayed full for %s; resume with from=%d or Last-Event-ID: %d",
			s.BufferBytes, s.StallTimeout, end.NextFrom, end.NextFrom-1)
		s.Logger.Warn("change feed: cut a reader that did not keep up", "last_seq", sent, "next_from", end.NextFrom)
	case auth.Ended(client) != nil:
		end.End = EndUnauthenticated
		end.Reason = fmt.Sprintf("%s; resume with from=%d with a token that is valid",
			strings.TrimPrefix(auth.Ended(client).Error(), auth.ErrUnauthenticated.Error()+": "), end.NextFrom)
	case client.Err() != nil:
		return nil
	case s.Done.Err() != nil:
		end.End, end.Reason = EndShutdown, fmt.Sprintf("the service is stopping; resume with from=%d", end.NextFrom)
	default:
		s.Logger.Error("change feed: reading the log failed", "err", err)
		end.End, end.Reason = EndError, fmt.Sprintf("reading the log failed (see the server log); resume with from=%d", end.NextFrom)
	}
	data, _ := json.Marshal(end)
	if req.sse {
		return fmt.Appendf(nil, "event: end\ndata: %s\n\n", data)
	}
	return append(data, '\n')
}

// eventLine is m as the feed sends it: {"seq","subject","msg_id","event"} on a line, or as a
// Server-Sent Event with the position as its id.
func (s *Server) eventLine(sse bool, m eventstore.Message) []byte {
	b := make([]byte, 0, len(m.Data)+len(m.Subject)+96)
	if sse {
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, m.Seq, 10)
		b = append(b, "\ndata: "...)
		b = eventstore.AppendMessageLine(b, m)
		return append(b, "\n\n"...)
	}
	b = eventstore.AppendMessageLine(b, m)
	return append(b, '\n')
}
