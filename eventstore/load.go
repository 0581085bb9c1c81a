package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// loadBatch is how many events one direct-get request asks for.
const loadBatch = 512

type directGetRequest struct {
	Seq        uint64 `json:"seq,omitempty"`
	NextBySubj string `json:"next_by_subj,omitempty"`
	LastBySubj string `json:"last_by_subj,omitempty"`
	Batch      int    `json:"batch,omitempty"`
}

// readTimeout bounds one read request when the caller's context has no deadline, so that a
// read sent to a server going down fails rather than waits forever.
const readTimeout = 5 * time.Second

// readRetries is how often a read is tried again when a replica answers that it is not
// available, or has not yet caught up with the leader.
const readRetries = 20

// errUnavailable is a direct get answered 503: the replica asked is not serving reads.
var errUnavailable = errors.New("stream replica unavailable")

func withReadTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, readTimeout)
}

// LastSeqOf returns the log position of the last event on a subject matching filter (a
// subject or a wildcard), 0 when there is none. On a replicated stream the stream's leader
// answers, so that the position is never older than an acknowledged append.
func (s *Store) LastSeqOf(ctx context.Context, filter string) (uint64, error) {
	if s.Replicas > 1 {
		return s.leaderLastSeq(ctx, filter)
	}
	ctx, cancel := withReadTimeout(ctx)
	defer cancel()
	req, _ := json.Marshal(directGetRequest{LastBySubj: filter})
	msg, err := s.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+s.Stream, req)
	if err != nil {
		return 0, fmt.Errorf("last of %s: %w", filter, err)
	}
	switch status := msg.Header.Get("Status"); status {
	case "":
	case "404":
		return 0, nil
	default:
		return 0, fmt.Errorf("last of %s: status %s %s", filter, status, msg.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(msg.Header.Get(nats.JSSequence), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("last of %s: bad sequence header %q", filter, msg.Header.Get(nats.JSSequence))
	}
	return seq, nil
}

// JetStream's answer when no message matches.
const errCodeNoMessageFound = 10037

// leaderLastSeq asks the stream's leader, through the message-get API that only the leader
// answers (direct gets may be answered by any replica, which may be behind).
func (s *Store) leaderLastSeq(ctx context.Context, filter string) (uint64, error) {
	ctx, cancel := withReadTimeout(ctx)
	defer cancel()
	req, _ := json.Marshal(directGetRequest{LastBySubj: filter})
	msg, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+s.Stream, req)
	if err != nil {
		return 0, fmt.Errorf("last of %s: %w", filter, err)
	}
	var res struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &res); err != nil {
		return 0, fmt.Errorf("last of %s: %w", filter, err)
	}
	switch {
	case res.Error != nil && res.Error.ErrorCode == errCodeNoMessageFound:
		return 0, nil
	case res.Error != nil:
		return 0, fmt.Errorf("last of %s: %w", filter, res.Error)
	case res.Message == nil:
		return 0, fmt.Errorf("last of %s: empty answer", filter)
	}
	return res.Message.Seq, nil
}

// Load returns every event of one aggregate, oldest first, and the log position of the last
// one (0 when it has none). It reads with batched direct gets, which a server answers
// consistently with the appends it has stored; on a replicated stream it first asks the leader
// for the aggregate's last position and reads until a replica has caught up with it.
func (s *Store) Load(ctx context.Context, kind, id string) ([]domain.Event, uint64, error) {
	subject, err := AggregateSubject(kind, id)
	if err != nil {
		return nil, 0, err
	}
	return s.loadSubject(ctx, subject)
}

// loadSubject returns every event on subject, oldest first, and the position of the last.
func (s *Store) loadSubject(ctx context.Context, subject string) ([]domain.Event, uint64, error) {
	var target uint64
	if s.Replicas > 1 {
		var err error
		if target, err = s.leaderLastSeq(ctx, subject); err != nil {
			return nil, 0, err
		}
	}
	for attempt := 1; ; attempt++ {
		evs, last, err := s.readSubject(ctx, subject)
		if err == nil && last >= target {
			return evs, last, nil
		}
		if err != nil && !errors.Is(err, errUnavailable) {
			return nil, 0, err
		}
		if attempt == readRetries {
			if err == nil {
				err = fmt.Errorf("the replicas are behind the leader (at %d of %d)", last, target)
			}
			return nil, 0, fmt.Errorf("load %s: %w", subject, err)
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
}

// readSubject reads every event on subject with batched direct gets.
func (s *Store) readSubject(ctx context.Context, subject string) ([]domain.Event, uint64, error) {
	var evs []domain.Event
	from, last := uint64(1), uint64(0)
	for {
		more, err := s.loadBatch(ctx, subject, from, func(ev domain.Event) {
			evs = append(evs, ev)
			last = ev.Seq
		})
		if err != nil {
			return nil, 0, fmt.Errorf("load %s: %w", subject, err)
		}
		if !more {
			return evs, last, nil
		}
		from = last + 1
	}
}

// loadBatch reads up to loadBatch events of subject from position from and reports whether
// more are pending.
func (s *Store) loadBatch(ctx context.Context, subject string, from uint64, add func(domain.Event)) (bool, error) {
	ctx, cancel := withReadTimeout(ctx)
	defer cancel()
	inbox := s.nc.NewRespInbox()
	// A batch is at most loadBatch messages and the end-of-batch status: the channel never
	// fills (SubscribeSync would allocate a far larger one for each batch).
	msgs := make(chan *nats.Msg, loadBatch+1)
	sub, err := s.nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return false, err
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(directGetRequest{Seq: from, NextBySubj: subject, Batch: loadBatch})
	if err := s.nc.PublishRequest("$JS.API.DIRECT.GET."+s.Stream, inbox, req); err != nil {
		return false, err
	}
	for {
		var msg *nats.Msg
		select {
		case msg = <-msgs:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		switch status := msg.Header.Get("Status"); status {
		case "":
		case "404":
			return false, nil
		case "204":
			pending, _ := strconv.ParseUint(msg.Header.Get("Nats-Num-Pending"), 10, 64)
			return pending > 0, nil
		case "503":
			return false, errUnavailable
		default:
			return false, fmt.Errorf("direct get: status %s %s", status, msg.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(msg.Header.Get(nats.JSSequence), 10, 64)
		if err != nil {
			return false, fmt.Errorf("direct get: bad sequence header %q", msg.Header.Get(nats.JSSequence))
		}
		ev, err := Decode(msg.Data, seq)
		if err != nil && !errors.Is(err, ErrMalformed) {
			return false, err
		}
		add(ev) // a malformed message counts for the position, and folds as nothing
	}
}
