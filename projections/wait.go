package projections

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Positioned is a view that follows the log: the projections' runner and the search index.
type Positioned interface {
	// Applied is the log position the view has applied.
	Applied() uint64
	// WaitFor returns once the view has applied the event at position seq, or ctx's error.
	WaitFor(ctx context.Context, seq uint64) error
}

// ErrBehind is a bounded wait that ended before the view reached the position it waited for:
// the view stands behind it (catching up, or unable to write), not the caller's request.
var ErrBehind = errors.New("behind the log")

// BehindError is the ErrBehind of a wait: which position was wanted, where the view stood when
// the wait ended, and how long it waited.
type BehindError struct {
	Want, At uint64
	Waited   time.Duration
}

// Error implements error.
func (e *BehindError) Error() string {
	return fmt.Sprintf("%v: position %d not applied within %s (applied up to %d)", ErrBehind, e.Want, e.Waited, e.At)
}

// Unwrap makes a BehindError an ErrBehind.
func (e *BehindError) Unwrap() error { return ErrBehind }

// WaitApplied is the one bounded wait for a view: it returns nil once v has applied the log up
// to position seq, a *BehindError when timeout passes first while ctx is still live, ctx's
// error when ctx ends first, and the view's own error when it cannot get there (the runner's
// ErrUnwritable while it cannot write the projections). Reads use it to answer only from views at or past the position
// they must reflect, writes to answer once their event is applied.
func WaitApplied(ctx context.Context, v Positioned, seq uint64, timeout time.Duration) error {
	if v.Applied() >= seq {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := v.WaitFor(wctx, seq)
	if err == nil || ctx.Err() != nil || wctx.Err() == nil {
		// Done, or the caller gave up, or the view said why it cannot get there.
		return err
	}
	return &BehindError{Want: seq, At: v.Applied(), Waited: timeout}
}
