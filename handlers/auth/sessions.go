package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

// Limits of the pages' sessions.
const (
	// SessionTTL is how long a sign-in lasts (the cookie's Max-Age too).
	SessionTTL = 12 * time.Hour
	// sessionPrefix starts every session cookie, so that it is never taken for a token.
	sessionPrefix = "mls_"
)

// A session of the pages is its cookie: "mls_<token>.<session id>.<end, Unix seconds>.<MAC>",
// the MAC an HMAC-SHA256 of what precedes it under the session key (derived from the server key
// file, the same on every instance on one log). The cookie holds no secret: it names the token
// it was made with, which is looked up at each request as a bearer token is (a revoked or
// expired token ends its sessions), and a session id of 128 random bits, which a sign-out
// records in the log (token.signed_out), so that it holds on every instance and after a
// restart. No instance keeps sessions in memory: any instance that has the key and the log
// checks any cookie.
type session struct {
	token   string
	id      string
	expires time.Time
}

func (s session) payload() string {
	return sessionPrefix + s.token + "." + s.id + "." + strconv.FormatInt(s.expires.Unix(), 10)
}

func (a *Authenticator) sessionMAC(payload string) []byte {
	m := hmac.New(sha256.New, a.SessionKey)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// cookie is the value of session s's cookie.
func (a *Authenticator) cookie(s session) string {
	p := s.payload()
	return p + "." + base64.RawURLEncoding.EncodeToString(a.sessionMAC(p))
}

// errNotOurs is a cookie that is no session cookie of this service.
var errNotOurs = fmt.Errorf("%w: the session cookie is not one this service set; sign in again", ErrUnauthenticated)

// parse checks a session cookie's form and MAC and returns its session.
func (a *Authenticator) parse(value string) (session, error) {
	rest, ok := strings.CutPrefix(value, sessionPrefix)
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 4 || !domain.IsToken(parts[0]) || parts[1] == "" {
		return session{}, errNotOurs
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil {
		return session{}, errNotOurs
	}
	end, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return session{}, errNotOurs
	}
	s := session{token: parts[0], id: parts[1], expires: time.Unix(end, 0).UTC()}
	if s.payload() != value[:strings.LastIndexByte(value, '.')] {
		return session{}, errNotOurs // not written as a cookie is (a number with a sign, leading zeros)
	}
	if !hmac.Equal(mac, a.sessionMAC(s.payload())) {
		a.foreignSession(s)
		return session{}, fmt.Errorf("%w: the session cookie is not signed with this service's key (made by an instance with another key file, or before the key changed); sign in again", ErrUnauthenticated)
	}
	return s, nil
}

// foreignSession logs, at most every keyCheckEvery, that a well-formed session cookie did not
// verify: an instance with another key file made it, or the key changed.
func (a *Authenticator) foreignSession(s session) {
	now := time.Now()
	a.mu.Lock()
	if !a.sessionWarned.IsZero() && now.Sub(a.sessionWarned) < keyCheckEvery {
		a.mu.Unlock()
		return
	}
	a.sessionWarned = now
	a.mu.Unlock()
	file := ""
	if a.Key != nil {
		file = a.Key.File
	}
	a.logger().Warn("a session cookie of the sign-in page (token "+s.token+") is not signed with this instance's key: it was made by an instance with another key file, or before the key file changed. "+
		"Every instance on one log needs the same key file ("+file+"); the browser is asked to sign in again",
		"token", s.token, "key_file", file)
}

// SignIn checks a token's secret and starts a session for it: it returns the caller, the
// session's cookie value and when it ends.
func (a *Authenticator) SignIn(secret string) (ledger.Caller, string, time.Time, error) {
	if len(a.SessionKey) == 0 {
		return ledger.Caller{}, "", time.Time{}, errors.New("sign in: this process has no session key")
	}
	c, err := a.Token(secret)
	if err != nil {
		return c, "", time.Time{}, err
	}
	b := make([]byte, 16)
	rand.Read(b)
	// The cookie counts whole seconds: the session ends at the second before SessionTTL.
	s := session{token: c.Principal, id: base64.RawURLEncoding.EncodeToString(b), expires: time.Unix(a.now().Add(SessionTTL).Unix(), 0).UTC()}
	return c, a.cookie(s), s.expires, nil
}

// SignOut ends the session of cookie value for good: the sign-out is recorded in the log
// (through the command layer, as the session's token), so that the cookie is refused on every
// instance and after a restart. A value that is no live session is nothing to end (nil).
func (a *Authenticator) SignOut(ctx context.Context, value string) error {
	c, err := a.Session(value)
	if err != nil {
		return nil
	}
	s, _ := a.parse(value)
	if a.Ledger == nil {
		return errors.New("sign out: this process has no ledger to record it")
	}
	if _, err := a.Ledger.SignOut(ctx, c, s.token, s.id, s.expires); err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	return nil
}

// Session returns the caller of the session cookie value: its token's, as the tokens
// projection has it now. A cookie this service did not sign, a session that has ended (signed
// out, or over SessionTTL old), or whose token is revoked or expired, is an
// ErrUnauthenticated.
func (a *Authenticator) Session(value string) (ledger.Caller, error) {
	if len(a.SessionKey) == 0 {
		return ledger.Caller{}, errNotOurs
	}
	s, err := a.parse(value)
	if err != nil {
		return ledger.Caller{}, err
	}
	if !a.now().Before(s.expires) {
		return ledger.Caller{}, fmt.Errorf("%w: the session has ended (it was made over %s ago); sign in again", ErrUnauthenticated, SessionTTL)
	}
	out, err := a.DB.SignedOut(s.token, s.id)
	if err != nil {
		return ledger.Caller{}, err
	}
	if out {
		return ledger.Caller{}, fmt.Errorf("%w: the session has ended (signed out); sign in again", ErrUnauthenticated)
	}
	return a.TokenNamed(s.token)
}

// TokenNamed returns the caller token name stands for, as the tokens projection has it now:
// an ErrUnauthenticated when it is unknown, revoked or expired.
func (a *Authenticator) TokenNamed(name string) (ledger.Caller, error) {
	t, err := a.DB.Token(name)
	if errors.Is(err, domain.ErrNotFound) {
		return ledger.Caller{}, fmt.Errorf("%w: the token %s is not known", ErrUnauthenticated, name)
	}
	if err != nil {
		return ledger.Caller{}, err
	}
	return a.usable(t)
}
