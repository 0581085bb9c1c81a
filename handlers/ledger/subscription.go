package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// Sealer seals a subscription's secret for the log (see subscriptions.Keyring): the log never
// holds a secret in clear.
type Sealer interface {
	// SealSecret returns secret sealed for subscription id and the id of the key it used.
	SealSecret(id string, secret []byte) (sealed, keyID string, err error)
}

// Bounds of a subscription's secret, in bytes.
const (
	MinSubscriptionSecret = 16
	MaxSubscriptionSecret = 256
)

// RegisterSubscription registers a webhook subscription; an empty cmd.ID gets a new UUID. The
// secret is sealed with sealer before anything is decided or written. cmd.KnownType and
// cmd.LogEnd are filled here.
func (l *Ledger) RegisterSubscription(ctx context.Context, c Caller, note string, cmd domain.RegisterSubscription, secret []byte, sealer Sealer) (Result, error) {
	meta, err := l.meta(c, note, "")
	if err != nil {
		return Result{}, err
	}
	if n := len(secret); n < MinSubscriptionSecret || n > MaxSubscriptionSecret || !utf8.Valid(secret) {
		return Result{}, domain.Invalid("secret", "must be %d to %d bytes of text, got %d bytes (omit it to have one made)", MinSubscriptionSecret, MaxSubscriptionSecret, n)
	}
	if cmd.ID == "" {
		cmd.ID = NewID()
	}
	cmd.ID = strings.TrimSpace(cmd.ID)
	if !domain.IsToken(cmd.ID) {
		return Result{}, domain.Invalid("id", "%q is not an id (no dots, *, >, spaces or control characters)", cmd.ID)
	}
	if cmd.SealedSecret, cmd.KeyID, err = sealer.SealSecret(cmd.ID, secret); err != nil {
		return Result{}, err
	}
	cmd.KnownType = eventstore.Registered
	return l.subscription(ctx, cmd.ID, func(s domain.Subscription, logEnd uint64) (domain.Event, error) {
		cmd.LogEnd = logEnd
		return domain.DecideRegisterSubscription(s, cmd, meta)
	})
}

// SubscriptionAction pauses, resumes or removes subscription id.
func (l *Ledger) SubscriptionAction(ctx context.Context, c Caller, note, id string, a domain.SubscriptionAction) (Result, error) {
	meta, err := l.meta(c, note, "")
	if err != nil {
		return Result{}, err
	}
	return l.subscription(ctx, id, func(s domain.Subscription, _ uint64) (domain.Event, error) {
		return domain.DecideSubscriptionAction(s, a, meta)
	})
}

// ResetSubscription makes subscription id start again from position from (a backfill, when
// it is earlier than where it was).
func (l *Ledger) ResetSubscription(ctx context.Context, c Caller, note, id string, from domain.Position) (Result, error) {
	meta, err := l.meta(c, note, "")
	if err != nil {
		return Result{}, err
	}
	return l.subscription(ctx, id, func(s domain.Subscription, logEnd uint64) (domain.Event, error) {
		return domain.DecideResetSubscription(s, domain.ResetSubscription{From: from, LogEnd: logEnd}, meta)
	})
}

// subscription decides a command on subscription id's folded events and appends its event
// with the fold's position as the expected one; a concurrent change is decided again.
func (l *Ledger) subscription(ctx context.Context, id string, decide func(domain.Subscription, uint64) (domain.Event, error)) (Result, error) {
	if !domain.IsToken(id) {
		return Result{}, domainNotFound(id)
	}
	for attempt := 0; ; attempt++ {
		evs, last, err := l.Store.Load(ctx, domain.KindSubscription, id)
		if err != nil {
			return Result{}, err
		}
		var s domain.Subscription
		for _, ev := range evs {
			s = domain.ApplySubscription(s, ev)
		}
		logEnd, err := l.Store.LastSeq(ctx)
		if err != nil {
			return Result{}, err
		}
		ev, err := decide(s, logEnd)
		if err != nil {
			return Result{ID: id}, err
		}
		res, err := l.Store.Append(ctx, last, ev)
		if errors.Is(err, domain.ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return Result{ID: id}, err
		}
		return Result{ID: id, Seq: res.Seq}, l.Wait(ctx, res.Seq)
	}
}

func domainNotFound(id string) error {
	return fmt.Errorf("subscription %q: %w", id, domain.ErrNotFound)
}
