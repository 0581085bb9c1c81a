package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
)

// ErrUnwritable is a write refused, or recorded and not applied, because the service cannot
// write now: the projections cannot be written (a full disk, a failing one). It is a 503, or a
// 507 when it wraps a want of space (domain.ErrInsufficientStorage, syscall.ENOSPC).
var ErrUnwritable = errors.New("writes refused")

// refuse is the check every command makes once meta has checked its caller: while Refuse says
// the service cannot write, the command is refused before anything is appended.
func (l *Ledger) refuse() error {
	if l.Refuse == nil {
		return nil
	}
	if err := l.Refuse(); err != nil {
		return fmt.Errorf("%w: %w; nothing was written, reads are still served (see /health): retry once writes resume", ErrUnwritable, err)
	}
	return nil
}

// notApplied is the answer of a write the log stored at seq and the projections did not apply
// (err says why): the write stands, and its position is given.
func notApplied(seq uint64, err error) error {
	if errors.Is(err, projections.ErrUnwritable) {
		return fmt.Errorf("%w: %w: the write is recorded in the log at position %d but %w; it is applied once they can be written (retry the read with min_seq=%d, not the write; see /health)",
			ErrNotVisible, ErrUnwritable, seq, err, seq)
	}
	return err
}

// RaiseDegraded records an alert about the service itself, such as the write failure that
// degrades it. Unlike RaiseAlert it is not refused while writes are, and it does not wait for
// the projections, which may be what fails: the sinks deliver it from the log.
func (l *Ledger) RaiseDegraded(ctx context.Context, c Caller, cmd domain.RaiseAlert) (domain.Alert, error) {
	meta, err := l.metaOf(c, "", "")
	if err != nil {
		return domain.Alert{}, err
	}
	return l.appendAlert(ctx, meta, cmd)
}
