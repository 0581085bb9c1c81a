package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

// Limits of the pages' sessions.
const (
	// SessionTTL is how long a sign-in lasts (the cookie's Max-Age too).
	SessionTTL = 12 * time.Hour
	// MaxSessions bounds the sessions one instance holds; past it, the one ending soonest is
	// dropped to make room.
	MaxSessions = 10_000
	// sessionPrefix starts every session id, so that it is never taken for a token.
	sessionPrefix = "mls_"
)

// sessions are the sign-ins of the pages, held by the instance that signed them in: the
// session cookie holds only a random id, never the token's secret. A session names its token,
// which is looked up at each request (a revoked or expired token ends the session), and it
// ends at SessionTTL, at sign-out or when the process stops.
type sessions struct {
	mu sync.Mutex
	// byDigest maps the SHA-256 of a session id to the session.
	byDigest map[string]session
}

type session struct {
	token   string
	expires time.Time
}

func sessionDigest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// add keeps a new session for token until expires and returns its id.
func (s *sessions) add(token string, now, expires time.Time) string {
	b := make([]byte, 32)
	rand.Read(b)
	id := sessionPrefix + base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byDigest == nil {
		s.byDigest = map[string]session{}
	}
	if len(s.byDigest) >= MaxSessions {
		var soonest string
		for d, v := range s.byDigest {
			if !v.expires.After(now) {
				delete(s.byDigest, d)
			} else if soonest == "" || v.expires.Before(s.byDigest[soonest].expires) {
				soonest = d
			}
		}
		if len(s.byDigest) >= MaxSessions {
			delete(s.byDigest, soonest)
		}
	}
	s.byDigest[sessionDigest(id)] = session{token: token, expires: expires}
	return id
}

// get returns the token of session id, dropping it when it has ended.
func (s *sessions) get(id string, now time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := sessionDigest(id)
	v, ok := s.byDigest[d]
	if ok && !v.expires.After(now) {
		delete(s.byDigest, d)
		return "", false
	}
	return v.token, ok
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byDigest, sessionDigest(id))
}

// SignIn checks a token's secret and starts a session for it: it returns the caller, the
// session's id (the cookie's value) and when it ends.
func (a *Authenticator) SignIn(secret string) (ledger.Caller, string, time.Time, error) {
	c, err := a.Token(secret)
	if err != nil {
		return c, "", time.Time{}, err
	}
	now := a.now()
	expires := now.Add(SessionTTL)
	return c, a.sessions.add(c.Principal, now, expires), expires, nil
}

// SignOut ends session id (nothing when it is not one).
func (a *Authenticator) SignOut(id string) { a.sessions.drop(id) }

// Session returns the caller of session id: its token's, as the tokens projection has it
// now. A session that has ended, or whose token is revoked or expired, is an
// ErrUnauthenticated, and the session is dropped.
func (a *Authenticator) Session(id string) (ledger.Caller, error) {
	if !strings.HasPrefix(id, sessionPrefix) {
		return ledger.Caller{}, fmt.Errorf("%w: the session cookie is not one this service set; sign in again", ErrUnauthenticated)
	}
	name, ok := a.sessions.get(id, a.now())
	if !ok {
		return ledger.Caller{}, fmt.Errorf("%w: the session has ended (signed out, over %s old, or the service restarted); sign in again", ErrUnauthenticated, SessionTTL)
	}
	c, err := a.TokenNamed(name)
	if err != nil {
		a.sessions.drop(id)
	}
	return c, err
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
