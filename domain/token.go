package domain

import (
	"fmt"
	"regexp"
	"time"
)

// KindToken is the kind of aggregate of an access token: its events are on ledger.token.<name>.
const KindToken = "token"

// Event types of access tokens.
const (
	EventTokenIssued  = "token.issued"
	EventTokenRevoked = "token.revoked"
	// EventTokenSignedOut ends one sign-in session of the pages made with the token.
	EventTokenSignedOut = "token.signed_out"
)

// The kinds of digest a token's secret is stored and looked up by.
const (
	// DigestHMAC is the hex HMAC-SHA256 of the secret under the server's token key (named by
	// the event's key id): whoever holds the log without the key cannot test a secret.
	DigestHMAC = "hmac-sha256"
	// DigestSHA256 is the hex SHA-256 of the secret, unkeyed: the digest of the tokens issued
	// before the keyed one (token.issued version 2 and older). They still sign in.
	DigestSHA256 = "sha256"
)

// Role is what a token's holder may do. Each role may do everything the roles before it may.
type Role string

// The roles, from the least to the most.
const (
	// RoleReader reads: every GET, the pages.
	RoleReader Role = "reader"
	// RoleWriter is an assistant or an extractor: creates and changes memories (never promotes
	// or rejects a candidate), project state, documents.
	RoleWriter Role = "writer"
	// RoleReviewer is a person who triages: a writer's rights plus promote and reject.
	RoleReviewer Role = "reviewer"
	// RoleAdmin may do everything: jobs, the nightly pipeline, alerts, tokens, subscriptions.
	RoleAdmin Role = "admin"
)

// Roles are the roles from the least to the most.
var Roles = []Role{RoleReader, RoleWriter, RoleReviewer, RoleAdmin}

func (r Role) rank() int {
	for i, x := range Roles {
		if x == r {
			return i
		}
	}
	return -1
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() >= 0 }

// Allows reports whether a holder of r may do what needs role need.
func (r Role) Allows(need Role) bool { return r.Valid() && need.Valid() && r.rank() >= need.rank() }

// TokenIssued records a new access token. The log holds the digest of its secret, never the
// secret.
type TokenIssued struct {
	Role Role `json:"role"`
	// OnBehalf is the right to act on behalf of others (X-Actor); an admin always has it.
	OnBehalf  bool       `json:"on_behalf"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Digest is the hex digest of the token's secret (256 random bits), of the kind
	// DigestKind.
	Digest string `json:"digest"`
	// DigestKind is DigestHMAC (version 3) or DigestSHA256 (versions 1 and 2, upcast).
	DigestKind string `json:"digest_kind"`
	// KeyID names the server key of a DigestHMAC digest (a digest of the key, not the key).
	KeyID string `json:"key_id,omitempty"`
}

// EventType implements Payload.
func (TokenIssued) EventType() string { return EventTokenIssued }

// TokenRevoked records that a token may no longer be used.
type TokenRevoked struct{}

// EventType implements Payload.
func (TokenRevoked) EventType() string { return EventTokenRevoked }

// TokenSignedOut records that a session of the sign-in page, made with the token, was signed
// out: its cookie is refused from then on, on every instance and after a restart.
type TokenSignedOut struct {
	// Session is the session's id (as its cookie names it; the cookie is of no use without
	// the server's key, and the session has ended).
	Session string `json:"session"`
	// ExpiresAt is when the session would have ended by itself.
	ExpiresAt time.Time `json:"expires_at"`
}

// EventType implements Payload.
func (TokenSignedOut) EventType() string { return EventTokenSignedOut }

// Token is the state of one access token, folded from its events.
type Token struct {
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	OnBehalf  bool       `json:"on_behalf"`
	ExpiresAt *time.Time `json:"expires_at"`
	Digest    string     `json:"-"`
	// DigestKind and KeyID say how Digest was made (see TokenIssued).
	DigestKind string     `json:"digest_kind"`
	KeyID      string     `json:"key_id,omitempty"`
	IssuedBy   string     `json:"issued_by"`
	IssuedAt   time.Time  `json:"issued_at"`
	RevokedBy  string     `json:"revoked_by,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Seq        uint64     `json:"seq"`
}

// Clone returns a copy of t that shares no memory with it.
func (t Token) Clone() Token {
	for _, p := range []**time.Time{&t.ExpiresAt, &t.RevokedAt} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	return t
}

// CanActOnBehalf reports whether the token may name another actor.
func (t Token) CanActOnBehalf() bool { return t.OnBehalf || t.Role == RoleAdmin }

// Usable reports whether the token may be used at time now: issued, not revoked, not expired.
func (t Token) Usable(now time.Time) error {
	switch {
	case t.Name == "":
		return fmt.Errorf("token: %w", ErrNotFound)
	case t.RevokedAt != nil:
		return fmt.Errorf("token %s was revoked at %s by %s", t.Name, t.RevokedAt.Format(time.RFC3339), t.RevokedBy)
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return fmt.Errorf("token %s expired at %s", t.Name, t.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

var tokenName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// IssueToken is the command that issues a token. Digest is the secret's keyed digest
// (DigestHMAC under the key KeyID); the secret itself never reaches the domain.
type IssueToken struct {
	Name      string
	Role      Role
	OnBehalf  bool
	ExpiresAt *time.Time
	Digest    string
	KeyID     string
}

// DecideIssueToken checks cmd against the token's current state t (zero when new).
func DecideIssueToken(t Token, cmd IssueToken, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	if !tokenName.MatchString(cmd.Name) {
		return Event{}, Invalid("name", "%q is not a token name: 1 to 64 lowercase letters, digits, - or _, starting with a letter or digit", cmd.Name)
	}
	if !cmd.Role.Valid() {
		return Event{}, Invalid("role", "%q is not a role: use reader, writer, reviewer or admin", cmd.Role)
	}
	if cmd.ExpiresAt != nil && !cmd.ExpiresAt.After(meta.Time) {
		return Event{}, Invalid("expires_at", "%s is not in the future", cmd.ExpiresAt.Format(time.RFC3339))
	}
	if len(cmd.Digest) != 64 {
		return Event{}, Invalid("digest", "must be a hex HMAC-SHA256")
	}
	if cmd.KeyID == "" {
		return Event{}, Invalid("key_id", "names no key: a token's digest is keyed")
	}
	if t.Name != "" {
		return Event{}, fmt.Errorf("%w: a token named %s was issued already (names are never reused, so the audit stays unambiguous); choose another name", ErrConflict, cmd.Name)
	}
	var exp *time.Time
	if cmd.ExpiresAt != nil {
		e := cmd.ExpiresAt.UTC()
		exp = &e
	}
	return NewEvent(cmd.Name, meta, TokenIssued{Role: cmd.Role, OnBehalf: cmd.OnBehalf, ExpiresAt: exp,
		Digest: cmd.Digest, DigestKind: DigestHMAC, KeyID: cmd.KeyID}), nil
}

// DecideRevokeToken revokes token t.
func DecideRevokeToken(t Token, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	if t.Name == "" {
		return Event{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	if t.RevokedAt != nil {
		return Event{}, fmt.Errorf("%w: token %s was revoked already", ErrConflict, t.Name)
	}
	return NewEvent(t.Name, meta, TokenRevoked{}), nil
}

// DecideSignOut ends session (of token t, until expires).
func DecideSignOut(t Token, session string, expires time.Time, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	if t.Name == "" {
		return Event{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	if session == "" || len(session) > 64 {
		return Event{}, Invalid("session", "is not a session id")
	}
	return NewEvent(t.Name, meta, TokenSignedOut{Session: session, ExpiresAt: expires.UTC()}), nil
}

// ApplyToken folds ev into t (a sign-out changes no token).
func ApplyToken(t Token, ev Event) Token {
	switch p := ev.Data.(type) {
	case TokenIssued:
		t = Token{Name: ev.AggregateID, Role: p.Role, OnBehalf: p.OnBehalf, ExpiresAt: p.ExpiresAt, Digest: p.Digest,
			DigestKind: p.DigestKind, KeyID: p.KeyID, IssuedBy: ev.Actor, IssuedAt: ev.Time}
	case TokenRevoked:
		at := ev.Time
		t.RevokedAt, t.RevokedBy = &at, ev.Actor
	default:
		return t
	}
	t.Seq = ev.Seq
	return t
}
