package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The resources' addresses.
const (
	// memoryScheme prefixes a memory's resource: memory://<id>.
	memoryScheme = "memory://"
	// QueueURI is the review queue's resource.
	QueueURI = "memledger://review-queue"
	// queueSize is how many candidates the review queue resource holds.
	queueSize = 200
)

// MemoryURI is the resource of memory id.
func MemoryURI(id string) string { return memoryScheme + id }

func (s *Service) addResources(srv *mcp.Server, p Principal) {
	srv.AddResourceTemplate(&mcp.ResourceTemplate{Name: "memory", URITemplate: memoryScheme + "{id}", MIMEType: "application/json",
		Description: "One memory as it is now (subscribe to hear when it changes: an edit, a promotion, a rejection)."},
		s.readMemory)
	if p.Role.Allows(RoleReviewer) {
		srv.AddResource(&mcp.Resource{Name: "review-queue", URI: QueueURI, MIMEType: "application/json",
			Description: "The candidates waiting for review, newest first (subscribe to hear when one arrives or is decided)."},
			s.readQueue)
	}
}

func (s *Service) readMemory(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	// While the projections catch up after a start, the read waits for them as the tools do.
	if _, err := s.served(ctx, 0, false); err != nil {
		return nil, err
	}
	id := strings.TrimPrefix(req.Params.URI, memoryScheme)
	data, err := s.DB.GetMemory(id)
	if err != nil {
		return nil, err
	}
	if data == nil || !domain.IsToken(id) {
		return nil, mcp.ResourceNotFoundError(req.Params.URI)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "application/json", Text: string(data)}}}, nil
}

func (s *Service) readQueue(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	if _, err := s.served(ctx, 0, false); err != nil {
		return nil, err
	}
	mems, _, err := s.DB.ListMemories(projections.MemoryFilter{Status: domain.StatusCandidate, Limit: queueSize})
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(struct {
		Candidates []json.RawMessage `json:"candidates"`
	}{mems})
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: QueueURI, MIMEType: "application/json", Text: string(data)}}}, nil
}

// subscribe accepts a subscription to a resource this server has.
func (s *Service) subscribe(_ context.Context, req *mcp.SubscribeRequest) error {
	uri := req.Params.URI
	if uri == QueueURI || (strings.HasPrefix(uri, memoryScheme) && domain.IsToken(strings.TrimPrefix(uri, memoryScheme))) {
		return nil
	}
	return fmt.Errorf("no resource %q to subscribe to: use memory://<id> or %s", uri, QueueURI)
}

// Run sends resource updates until ctx ends: while a session is live, it follows the log,
// waits until the projections have applied each memory event (so that a read of the resource
// shows the change) and tells the subscribers of that memory, and of the review queue when the
// memory is a candidate or the event may have taken it out of the queue (mayLeaveQueue). While
// no session is live it follows nothing: the first session to begin names the log's end at
// its start, and Run follows from there (see track), so every change after a subscription is
// told. It reads nothing at its start. A follow that fails (the projections cannot be written,
// the log cannot be read) is taken up again from the event it stopped at, after a wait that
// doubles up to followRetryMax: the updates pause while the service is degraded and resume with
// it, none skipped. The log says so (at most once a minute, whether a failure goes on or comes
// back) and, once a follow taken up tells of an event again, that it did.
func (s *Service) Run(ctx context.Context) error {
	s.init()
	var next uint64 // the position after the last event followed
	var retry time.Duration
	// While the follow fails, the log says so at most once a minute, and once a follow taken
	// up tells of an event again, that it did (when it said the failure).
	var failingSince, warned time.Time
	failures := 0
	resumed := func() {
		if failures == 0 {
			return
		}
		if !warned.Before(failingSince) {
			s.Logger.Info("mcp: resource updates taken up again", "failures", failures,
				"failed_for", time.Since(failingSince).Round(time.Millisecond))
		}
		failures = 0
	}
	for {
		var from uint64
		if retry == 0 {
			select {
			case <-ctx.Done():
				return nil
			case from = <-s.wake:
			}
		} else {
			t := time.NewTimer(retry)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		var err error
		next, err = s.follow(ctx, max(from, next), resumed)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			failures, retry = 0, 0
			continue
		}
		retry = min(max(2*retry, followRetryMin), followRetryMax)
		if failures++; failures == 1 {
			failingSince = time.Now()
		}
		if time.Since(warned) >= failWarnEvery {
			warned = time.Now()
			s.Logger.Warn("mcp: resource updates paused: following the log failed; taking it up again", "at", next,
				"retry_in", retry, "failures", failures, "failing_for", time.Since(failingSince).Round(time.Millisecond), "err", err)
		}
	}
}

// followRetryMin and followRetryMax bound the wait before a failed follow is taken up again;
// failWarnEvery is how often the log says that it still fails.
const (
	failWarnEvery  = time.Minute
	followRetryMin = 250 * time.Millisecond
	followRetryMax = 5 * time.Second
)

// follow sends the resource updates of the log's events from position from on, until no
// session is live at an event; it returns the position after the last event it took. It calls
// told after each memory's event it told of.
func (s *Service) follow(ctx context.Context, from uint64, told func()) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := make(chan domain.Event, 256)
	errc := make(chan error, 1)
	go func() { errc <- s.Store.Follow(ctx, from, evs) }()
	next := from
	for {
		var ev domain.Event
		select {
		case ev = <-evs:
		case err := <-errc:
			if ctx.Err() != nil {
				return next, nil
			}
			return next, err
		}
		if !s.serving() {
			return next, nil // nobody to tell: the next session starts another follow
		}
		if ev.Kind() != domain.KindMemory {
			next = ev.Seq + 1
			continue
		}
		// Without rushing the writers' own events (a session open beside a stream of
		// writes would otherwise make each of them commit alone). An event not applied
		// is not taken: the next follow begins with it.
		if err := s.Runner.WaitCommitted(ctx, ev.Seq); err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return next, nil
			}
			return next, err
		}
		next = ev.Seq + 1
		candidate := false
		if data, err := s.DB.GetMemoryCommitted(ev.AggregateID); err == nil && data != nil {
			var v struct {
				Status domain.Status `json:"status"`
			}
			candidate = json.Unmarshal(data, &v) == nil && v.Status == domain.StatusCandidate
		}
		uris := []string{MemoryURI(ev.AggregateID)}
		if candidate || mayLeaveQueue(ev.Type) {
			uris = append(uris, QueueURI)
		}
		s.notify(ctx, uris)
		told()
	}
}

// mayLeaveQueue reports whether an event of type typ can take a memory out of the review queue:
// every event but a creation and a reinforcement (neither changes a status). The queue's
// subscribers are told of such an event whatever the memory's status was, rather than keep the
// status of every candidate, which a start would have to read from the projections whole.
func mayLeaveQueue(typ string) bool {
	return typ != domain.EventMemoryCreated && typ != domain.EventMemoryReinforced
}

// serving reports whether a server is live: without one no update is sent.
func (s *Service) serving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.servers) > 0
}

// notify tells every live server's subscribers of uris that they changed.
func (s *Service) notify(ctx context.Context, uris []string) {
	s.mu.Lock()
	servers := make([]*mcp.Server, 0, len(s.servers))
	for srv := range s.servers {
		servers = append(servers, srv)
	}
	s.mu.Unlock()
	for _, srv := range servers {
		for _, uri := range uris {
			srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: uri})
		}
	}
}
