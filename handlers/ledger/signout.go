package ledger

import (
	"context"
	"time"

	"github.com/memledger/memledger/domain"
)

// SignOut records that the session session of the sign-in page, made with token name and
// ending at expires, was signed out (token.signed_out): every instance refuses its cookie once
// its projections have applied the event, this one when SignOut returns.
func (l *Ledger) SignOut(ctx context.Context, c Caller, name, session string, expires time.Time) (Result, error) {
	meta, err := l.meta(c, "", "")
	if err != nil {
		return Result{}, err
	}
	return l.token(ctx, name, func(t domain.Token) (domain.Event, error) {
		return domain.DecideSignOut(t, session, expires, meta)
	})
}
