package handlers

import (
	"context"
	"fmt"

	"github.com/memledger/memledger/handlers/ledger"
)

// waitRead waits until the projections have applied the log up to seq, for a read that names
// a position (an as-of read, a feed from a time). A wait that times out is ledger.ErrNotVisible
// (503).
func (s *Server) waitRead(ctx context.Context, seq uint64) error {
	timeout := s.Ledger.Timeout()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.Runner.WaitFor(wctx, seq); err != nil {
		if ctx.Err() == nil {
			return fmt.Errorf("%w: the projections have not applied the log up to position %d within %s; retry (see /health)",
				ledger.ErrNotVisible, seq, timeout)
		}
		return err
	}
	return nil
}
