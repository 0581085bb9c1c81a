package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/feed"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

// waitRead waits until the projections have applied the log up to seq, for a read that names
// a position (an as-of read, a feed from a time). A wait that times out is ledger.ErrNotVisible
// (503).
func (s *Server) waitRead(ctx context.Context, seq uint64) error {
	timeout := s.Ledger.Timeout()
	err := projections.WaitApplied(ctx, s.Runner, seq, timeout)
	var behind *projections.BehindError
	if errors.As(err, &behind) {
		return fmt.Errorf("%w: the projections have not applied the log up to position %d within %s (they are at %d); retry (see /health)",
			ledger.ErrNotVisible, seq, timeout, behind.At)
	}
	return err
}

// asOf reads the as_of query parameter of r: a log position or an RFC 3339 time, resolved to
// the position right after which the answer is taken (a time: the last event at or before
// it), once the projections have applied it. ok is false when r has none. A position beyond the
// log's end, a time after now, or anything else is domain.ErrInvalid.
func (s *Server) asOf(r *http.Request) (seq uint64, ok bool, err error) {
	v := r.URL.Query().Get("as_of")
	if v == "" {
		return 0, false, nil
	}
	p, err := feed.ParsePosition("as_of", v)
	if err != nil {
		return 0, true, err
	}
	if !p.IsTime() && p.Seq > 0 && p.Seq <= s.Runner.Applied() {
		// Applied, so in the log: no need to ask the log where it ends.
		return p.Seq, true, nil
	}
	last, err := s.Store.LastSeq(r.Context())
	if err != nil {
		return 0, true, err
	}
	switch {
	case p.IsTime() && p.Time.After(s.Now()):
		return 0, true, domain.Invalid("as_of", "%s is in the future", v)
	case p.IsTime():
		if err := s.waitRead(r.Context(), last); err != nil {
			return 0, true, err
		}
		seq, _, err = s.DB.PositionAt(p.Time)
		return min(seq, last), true, err
	case p.Seq == 0:
		return 0, true, domain.Invalid("as_of", "log positions start at 1")
	case p.Seq > last:
		return 0, true, domain.Invalid("as_of", "%d is beyond the log's end (its last event is %d)", p.Seq, last)
	}
	return p.Seq, true, s.waitRead(r.Context(), p.Seq)
}
