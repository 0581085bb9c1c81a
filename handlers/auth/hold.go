package auth

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// HoldCheck is how often a held request's credentials are checked again.
const HoldCheck = time.Second

// Hold returns a context for a long-lived answer to r (a stream): it ends, with the
// ErrUnauthenticated that says why as its cause (context.Cause), once r's credentials no
// longer authenticate: its token revoked or expired, its session ended. They are checked
// against the tokens projection every HoldCheck, so a stream outlives its token's revocation,
// as this instance's projections have applied it, by at most that. The cancel function ends
// the context and its checks.
func (a *Authenticator) Hold(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(r.Context())
	creds := r.Clone(ctx) // the credentials, as the request came with them
	go func() {
		t := time.NewTicker(HoldCheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := a.Authenticate(creds); errors.Is(err, ErrUnauthenticated) {
					cancel(err)
					return
				}
			}
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// Ended returns why a held stream's context ended when it did because its credentials no
// longer authenticate (see Hold), else nil.
func Ended(ctx context.Context) error {
	if err := context.Cause(ctx); errors.Is(err, ErrUnauthenticated) {
		return err
	}
	return nil
}
