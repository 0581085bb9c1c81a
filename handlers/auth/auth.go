// Package auth authenticates the callers of memledger's edges: a bearer token is looked up by
// its keyed digest in the tokens projection (a session cookie of the sign-in page names its token),
// and becomes a ledger.Caller with the token's name as principal and actor.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

// SessionCookie is the cookie the sign-in page sets: HttpOnly and SameSite=Strict, it holds a
// signed session (see SignIn), never the token's secret.
const SessionCookie = "memledger_session"

// Errors of authentication and authorisation: ErrUnauthenticated is a 401 (no usable
// credentials), ErrForbidden a 403 (a known principal without the right).
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Authenticator turns a request's credentials into a caller: a bearer token's, or a session
// cookie's.
type Authenticator struct {
	DB *projections.DB
	// Key digests a bearer token's secret as the log records it (tokens issued before the
	// keyed digest are looked up by their plain SHA-256).
	Key *ledger.TokenKey
	// SessionKey signs the pages' session cookies (derived from the server key file, as Key
	// is): every instance on one log with the same key checks every cookie.
	SessionKey []byte
	// Ledger records the sign-outs (token.signed_out), so that they hold on every instance.
	Ledger *ledger.Ledger
	// Now is the clock expiry is checked against (time.Now).
	Now    func() time.Time
	Logger *slog.Logger

	mu sync.Mutex
	// keyChecked is when an unknown token last made the tokens of other keys be looked for;
	// sessionWarned when a cookie of another key was last logged.
	keyChecked, sessionWarned time.Time
}

// keyCheckEvery bounds how often an unknown token makes the tokens be looked through for
// ones issued under another key (and the log say so).
const keyCheckEvery = 30 * time.Second

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
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

// Authenticate returns the caller of request r: principal, actor and role from its bearer
// token (the Authorization header), else from its session cookie. X-Actor names another actor
// only when the token has the on-behalf right. Errors wrap ErrUnauthenticated or ErrForbidden
// with a detail for the client.
func (a *Authenticator) Authenticate(r *http.Request) (ledger.Caller, error) {
	var c ledger.Caller
	var err error
	if h := r.Header.Get("Authorization"); h != "" {
		var secret string
		if secret, err = ParseBearer(h); err == nil {
			c, err = a.Token(secret)
		}
	} else if ck, cerr := r.Cookie(SessionCookie); cerr == nil && ck.Value != "" {
		c, err = a.Session(ck.Value)
	} else {
		err = fmt.Errorf("%w: send a token: Authorization: Bearer <token>", ErrUnauthenticated)
	}
	if err != nil {
		return ledger.Caller{}, err
	}
	c.CorrelationID = r.Header.Get("X-Correlation-ID")
	return OnBehalf(c, r.Header.Get("X-Actor"))
}

// Token returns the caller a token secret stands for.
func (a *Authenticator) Token(secret string) (ledger.Caller, error) {
	t, err := a.tokenOf(secret)
	if errors.Is(err, domain.ErrNotFound) {
		a.unknownToken()
		return ledger.Caller{}, fmt.Errorf("%w: the token is not known", ErrUnauthenticated)
	}
	if err != nil {
		return ledger.Caller{}, err
	}
	return a.usable(t)
}

// tokenOf looks secret up by its keyed digest, then by the plain SHA-256 of the tokens issued
// before the digest was keyed (only such a token is found that way).
func (a *Authenticator) tokenOf(secret string) (domain.Token, error) {
	if a.Key != nil {
		t, err := a.DB.TokenByDigest(a.Key.Digest(secret))
		if err == nil && t.DigestKind == domain.DigestHMAC && t.KeyID == a.Key.ID {
			return t, nil
		}
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return t, err
		}
	}
	t, err := a.DB.TokenByDigest(ledger.LegacyTokenDigest(secret))
	if err == nil && t.DigestKind == domain.DigestSHA256 {
		return t, nil
	}
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		return t, err
	}
	return domain.Token{}, fmt.Errorf("token: %w", domain.ErrNotFound)
}

// unknownToken looks, at most every keyCheckEvery, for usable tokens issued under another key
// than this instance's, and logs them when there are: a token refused as unknown is then
// perhaps one of them, and the instance lacks the key file the others have.
func (a *Authenticator) unknownToken() {
	now := time.Now()
	a.mu.Lock()
	if !a.keyChecked.IsZero() && now.Sub(a.keyChecked) < keyCheckEvery {
		a.mu.Unlock()
		return
	}
	a.keyChecked = now
	a.mu.Unlock()
	a.CheckKey()
}

// CheckKey logs a warning, and returns them, when usable tokens were issued under a key other
// than this instance's: they cannot sign in here until the instance has the same key file as
// the one they were issued on.
func (a *Authenticator) CheckKey() []domain.Token {
	if a.Key == nil {
		return nil
	}
	ts, err := a.DB.ListTokens()
	if err != nil {
		a.logger().Warn("could not look through the tokens for ones of another key", "err", err)
		return nil
	}
	var foreign []domain.Token
	var names, keys []string
	for _, t := range ts {
		if t.DigestKind == domain.DigestHMAC && t.KeyID != a.Key.ID && t.Usable(a.now()) == nil {
			foreign = append(foreign, t)
			names = append(names, t.Name)
			if !slices.Contains(keys, t.KeyID) {
				keys = append(keys, t.KeyID)
			}
		}
	}
	if len(foreign) > 0 {
		a.logger().Warn(fmt.Sprintf("tokens issued under another server key cannot sign in on this instance: %s (key %s); this instance's key is %s, from %s. "+
			"Every instance on one log needs the same key file: stop this instance, copy the file from an instance where those tokens work, and start it again",
			strings.Join(names, ", "), strings.Join(keys, ", "), a.Key.ID, a.Key.File),
			"tokens", names, "token_keys", keys, "key", a.Key.ID, "key_file", a.Key.File)
	}
	return foreign
}

func (a *Authenticator) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// usable is the caller of token t, or an ErrUnauthenticated when it is revoked or expired.
func (a *Authenticator) usable(t domain.Token) (ledger.Caller, error) {
	if err := t.Usable(a.now()); err != nil {
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
