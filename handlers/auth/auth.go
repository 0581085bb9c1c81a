// Package auth authenticates the callers of memledger's edges: a bearer token (or the session
// cookie the sign-in page sets, which holds one) is looked up by its digest in the tokens
// projection and becomes a ledger.Caller with the token's name as principal and actor.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

// SessionCookie is the cookie the sign-in page sets: it holds the token, HttpOnly and
// SameSite=Strict.
const SessionCookie = "memledger_session"

// Errors of authentication and authorisation: ErrUnauthenticated is a 401 (no usable
// credentials), ErrForbidden a 403 (a known principal without the right).
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Authenticator turns a request's credentials into a caller.
type Authenticator struct {
	DB *projections.DB
	// Now is the clock expiry is checked against (time.Now).
	Now func() time.Time
}

// ParseBearer returns the token of an Authorization header value "Bearer <token>" (the scheme
// case-insensitive, one space or more). Anything else is an error saying what is wrong.
func ParseBearer(header string) (string, error) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: the Authorization header must be \"Bearer <token>\"", ErrUnauthenticated)
	}
	tok := strings.TrimLeft(rest, " ")
	if tok == "" || len(tok) > 256 || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return "", fmt.Errorf("%w: the bearer token is empty or holds characters a token never has", ErrUnauthenticated)
	}
	return tok, nil
}

// Credentials returns the token a request carries: from the Authorization header, else from
// the session cookie; "" when it carries none.
func Credentials(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		return ParseBearer(h)
	}
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		return ParseBearer("Bearer " + c.Value)
	}
	return "", nil
}

// Authenticate returns the caller of request r: principal, actor and role from its token.
// X-Actor names another actor only when the token has the on-behalf right. Errors wrap
// ErrUnauthenticated or ErrForbidden with a detail for the client.
func (a *Authenticator) Authenticate(r *http.Request) (ledger.Caller, error) {
	secret, err := Credentials(r)
	if err != nil {
		return ledger.Caller{}, err
	}
	if secret == "" {
		return ledger.Caller{}, fmt.Errorf("%w: send a token: Authorization: Bearer <token>", ErrUnauthenticated)
	}
	c, err := a.Token(secret)
	if err != nil {
		return ledger.Caller{}, err
	}
	c.CorrelationID = r.Header.Get("X-Correlation-ID")
	return OnBehalf(c, r.Header.Get("X-Actor"))
}

// Token returns the caller a token secret stands for.
func (a *Authenticator) Token(secret string) (ledger.Caller, error) {
	t, err := a.DB.TokenByDigest(ledger.TokenDigest(secret))
	if errors.Is(err, domain.ErrNotFound) {
		return ledger.Caller{}, fmt.Errorf("%w: the token is not known", ErrUnauthenticated)
	}
	if err != nil {
		return ledger.Caller{}, err
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	if err := t.Usable(now()); err != nil {
		return ledger.Caller{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return ledger.Caller{Actor: t.Name, Principal: t.Name, Role: t.Role, OnBehalf: t.CanActOnBehalf()}, nil
}

// OnBehalf makes c act as actor (an X-Actor value): allowed only with the on-behalf right.
func OnBehalf(c ledger.Caller, actor string) (ledger.Caller, error) {
	if actor == "" || actor == c.Principal {
		return c, nil
	}
	if !c.OnBehalf {
		return c, fmt.Errorf("%w: X-Actor %q differs from the token's name %q, and the token %s has no right to act on behalf of others (issue it with on_behalf, or drop X-Actor)",
			ErrForbidden, actor, c.Principal, c.Principal)
	}
	if err := domain.CheckActor(actor); err != nil {
		return c, domain.Invalid("X-Actor", "%s", err.(*domain.FieldError).Reason)
	}
	c.Actor = actor
	return c, nil
}

// Require is the check of a role: nil when c's role allows need, else an ErrForbidden that
// names both.
func Require(c ledger.Caller, need domain.Role) error {
	if c.Role.Allows(need) {
		return nil
	}
	return fmt.Errorf("%w: this needs the role %s; the token %s has the role %s", ErrForbidden, need, c.Principal, c.Role)
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c ledger.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the authenticated caller ctx carries, if any.
func CallerFrom(ctx context.Context) (ledger.Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(ledger.Caller)
	return c, ok
}
