package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
)

// DefaultReadWait bounds how long a read waits for the projections when ReadWait is 0 (the
// HTTP reads' default too).
const DefaultReadWait = 10 * time.Second

// ReadOptions are the arguments every read tool takes.
type ReadOptions struct {
	MinSeq uint64 `json:"min_seq,omitempty" jsonschema:"the seq of a write (yours, or one you were told of): the read waits until it reflects that log position; the answer's position says which position it was served at"`
}

// errNotReadable is a read that waited its bound for the projections.
var errNotReadable = errors.New("not readable yet")

func (s *Service) readWait() time.Duration {
	if s.ReadWait <= 0 {
		return DefaultReadWait
	}
	return s.ReadWait
}

// served holds a read back until the views it answers from (the projections, and the search
// index when search is set) are past the log's position when the service started (they catch
// up after a start) and past minSeq: at most ReadWait, as the HTTP reads wait, then the read
// is refused with errNotReadable. A minSeq beyond the log's end is invalid. It returns the log
// position the read is served at: every event up to it is reflected.
func (s *Service) served(ctx context.Context, minSeq uint64, search bool) (uint64, error) {
	_, target := s.Runner.CatchUp()
	want := max(minSeq, target)
	type view struct {
		name string
		v    projections.Positioned
	}
	views := []view{{"projections", s.Runner}}
	if search {
		views = append(views, view{"search index", s.Search})
	}
	if minSeq > s.Runner.Applied() {
		last, err := s.Store.LastSeq(ctx)
		if err != nil {
			return 0, err
		}
		if minSeq > last {
			return 0, domain.Invalid("min_seq", "%d is beyond the log's end (its last event is %d)", minSeq, last)
		}
	}
	position := ^uint64(0)
	for _, v := range views {
		if err := projections.WaitApplied(ctx, v.v, want, s.readWait()); err != nil {
			var behind *projections.BehindError
			if errors.As(err, &behind) {
				why := "min_seq"
				if want == target && minSeq < target {
					why = "the log's position at start (they are catching up)"
				}
				err = fmt.Errorf("%w: the %s are at log position %d, behind %d, %s, after waiting %s; retry",
					errNotReadable, v.name, behind.At, want, why, s.readWait())
			}
			return 0, err
		}
		position = min(position, v.v.Applied())
	}
	return position, nil
}
