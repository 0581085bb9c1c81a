package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/memledger/memledger/domain"
	"github.com/nats-io/nats.go"
)

// loadBatch is how many events one direct-get request asks for.
const loadBatch = 512

type directGetRequest struct {
	Seq        uint64 `json:"seq,omitempty"`
	NextBySubj string `json:"next_by_subj,omitempty"`
	LastBySubj string `json:"last_by_subj,omitempty"`
	Batch      int    `json:"batch,omitempty"`
}

// LastSeqOf returns the log position of the last event on a subject matching filter (a
// subject or a wildcard), 0 when there is none.
func (s *Store) LastSeqOf(ctx context.Context, filter string) (uint64, error) {
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

// Load returns every event of one aggregate, oldest first, and the log position of the last
// one (0 when it has none). It reads with batched direct gets, which the server answers
// consistently with the appends around them.
func (s *Store) Load(ctx context.Context, kind, id string) ([]domain.Event, uint64, error) {
	subject, err := AggregateSubject(kind, id)
	if err != nil {
		return nil, 0, err
	}
	return s.loadSubject(ctx, subject)
}

// loadSubject returns every event on subject, oldest first, and the position of the last.
func (s *Store) loadSubject(ctx context.Context, subject string) ([]domain.Event, uint64, error) {
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
		default:
			return false, fmt.Errorf("direct get: status %s %s", status, msg.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(msg.Header.Get(nats.JSSequence), 10, 64)
		if err != nil {
			return false, fmt.Errorf("direct get: bad sequence header %q", msg.Header.Get(nats.JSSequence))
		}
		ev, err := Decode(msg.Data, seq)
		if err != nil {
			return false, err
		}
		add(ev)
	}
}
