package ledger

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/memledger/memledger/domain"
)

// TokenPrefix starts every token secret, so that a leaked one is recognised by scanners.
const TokenPrefix = "mlt_"

// NewTokenSecret returns a new secret: TokenPrefix and 32 random bytes in base64url.
func NewTokenSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// IssueToken issues a token and returns its secret, which is not kept anywhere: the log
// records its keyed digest (TokenKey).
func (l *Ledger) IssueToken(ctx context.Context, c Caller, note string, cmd domain.IssueToken) (string, Result, error) {
	return l.IssueTokenSecret(ctx, c, note, cmd, NewTokenSecret())
}

// IssueTokenSecret issues a token whose secret is secret (made by NewTokenSecret): the caller
// may keep it somewhere first, so that no crash leaves a token issued whose secret is lost
// (the first start writes <data>/admin.token before it issues the admin token).
func (l *Ledger) IssueTokenSecret(ctx context.Context, c Caller, note string, cmd domain.IssueToken, secret string) (string, Result, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) < len(TokenPrefix)+43 {
		return "", Result{}, domain.Invalid("secret", "is not a token secret made by NewTokenSecret")
	}
	if l.TokenKey == nil {
		return "", Result{}, errors.New("issue token: this process has no token key")
	}
	meta, err := l.meta(c, note, "")
	if err != nil {
		return "", Result{}, err
	}
	cmd.Name = strings.TrimSpace(cmd.Name)
	cmd.Digest, cmd.KeyID = l.TokenKey.Digest(secret), l.TokenKey.ID
	res, err := l.token(ctx, cmd.Name, func(t domain.Token) (domain.Event, error) {
		return domain.DecideIssueToken(t, cmd, meta)
	})
	if err != nil {
		return "", res, err
	}
	return secret, res, nil
}

// RevokeToken revokes token name; it answers once the projections have applied the
// revocation, so the next request with the token is refused.
func (l *Ledger) RevokeToken(ctx context.Context, c Caller, note, name string) (Result, error) {
	meta, err := l.meta(c, note, "")
	if err != nil {
		return Result{}, err
	}
	return l.token(ctx, name, func(t domain.Token) (domain.Event, error) {
		return domain.DecideRevokeToken(t, meta)
	})
}

// token decides a command on token name's folded events and appends its event with the
// fold's position as the expected one.
func (l *Ledger) token(ctx context.Context, name string, decide func(domain.Token) (domain.Event, error)) (Result, error) {
	if !domain.IsToken(name) {
		return Result{}, domain.Invalid("name", "%q is not a token name", name)
	}
	for attempt := 0; ; attempt++ {
		evs, last, err := l.Store.Load(ctx, domain.KindToken, name)
		if err != nil {
			return Result{}, err
		}
		var t domain.Token
		for _, ev := range evs {
			t = domain.ApplyToken(t, ev)
		}
		ev, err := decide(t)
		if err != nil {
			return Result{ID: name}, err
		}
		res, err := l.Store.Append(ctx, last, ev)
		if errors.Is(err, domain.ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return Result{ID: name}, fmt.Errorf("token %s: %w", name, err)
		}
		return Result{ID: name, Seq: res.Seq}, l.Wait(ctx, res.Seq)
	}
}
