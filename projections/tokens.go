package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// The buckets of the tokens projection.
var (
	bucketTokens       = []byte("tokens")         // name → storedToken JSON
	bucketTokenDigests = []byte("token_digests")  // digest of the secret → name
	bucketSignOuts     = []byte("token_signouts") // name NUL session id → the session's end (RFC 3339)
)

// storedToken is a token with the digest of its secret, which domain.Token does not marshal.
type storedToken struct {
	domain.Token
	Digest string `json:"digest"`
}

// Tokens is the projection of the access tokens: who holds which role, until when.
type Tokens struct{}

// Name implements Projection.
func (Tokens) Name() string { return "tokens" }

// Init implements Projection.
func (p Tokens) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()...) }

// Version implements Versioned. Version 2 keeps each token's digest kind and key id, version 3
// the sessions signed out, version 4 only those that have not ended by themselves.
func (Tokens) Version() int { return 4 }

// Buckets implements Versioned.
func (Tokens) Buckets() [][]byte { return [][]byte{bucketTokens, bucketTokenDigests, bucketSignOuts} }

// Apply implements Projection.
func (Tokens) Apply(tx *bolt.Tx, ev domain.Event) error {
	if ev.Kind() != domain.KindToken || ev.Data == nil {
		return nil
	}
	if p, ok := ev.Data.(domain.TokenSignedOut); ok {
		b := tx.Bucket(bucketSignOuts)
		if err := pruneSignOuts(b, ev.Time); err != nil {
			return err
		}
		return b.Put(signOutKey(ev.AggregateID, p.Session), []byte(p.ExpiresAt.UTC().Format(time.RFC3339Nano)))
	}
	b := tx.Bucket(bucketTokens)
	var t domain.Token
	if v := b.Get([]byte(ev.AggregateID)); v != nil {
		var st storedToken
		if err := json.Unmarshal(v, &st); err != nil {
			return err
		}
		t, t.Digest = st.Token, st.Digest
	}
	t = domain.ApplyToken(t, ev)
	if _, ok := ev.Data.(domain.TokenIssued); ok {
		if err := tx.Bucket(bucketTokenDigests).Put([]byte(t.Digest), []byte(t.Name)); err != nil {
			return err
		}
	}
	return putJSON(b, []byte(t.Name), storedToken{Token: t, Digest: t.Digest})
}

func signOutKey(token, session string) []byte { return []byte(token + "\x00" + session) }

// signOutKeep is how long a sign-out is kept past its session's end: a day, so that an instance
// whose clock is behind the one that wrote a later sign-out still refuses the session.
const signOutKeep = 24 * time.Hour

// pruneSignOuts drops the sign-outs of sessions that had ended by themselves signOutKeep before
// now, the time of the sign-out being applied: a session past its end is refused anyway, so its
// sign-out need not be kept, and the bucket holds only the sessions signed out and not yet
// ended. The time is the event's, not the clock's, so that a rebuild prunes what the live file
// pruned.
func pruneSignOuts(b *bolt.Bucket, now time.Time) error {
	var ended [][]byte
	err := b.ForEach(func(k, v []byte) error {
		end, err := time.Parse(time.RFC3339Nano, string(v))
		if err != nil {
			// Not a time this projection wrote: keep it (a sign-out is never dropped early)
			// rather than stop the projection over it.
			return nil
		}
		if !end.Add(signOutKeep).After(now) {
			ended = append(ended, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range ended {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// SignedOut reports whether the session of the sign-in page named session, made with token,
// was signed out.
func (db *DB) SignedOut(token, session string) (bool, error) {
	var out bool
	err := db.viewOf(domain.KindToken, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSignOuts); b != nil {
			out = b.Get(signOutKey(token, session)) != nil
		}
		return nil
	})
	return out, err
}

// Token returns the token named name, revoked and expired ones included.
func (db *DB) Token(name string) (domain.Token, error) {
	var t domain.Token
	err := db.viewOf(domain.KindToken, func(tx *bolt.Tx) error {
		var err error
		t, err = db.tokens.get(tx, name)
		return err
	})
	return t, err
}

// TokenByDigest returns the token whose secret has the given digest.
func (db *DB) TokenByDigest(digest string) (domain.Token, error) {
	var t domain.Token
	err := db.viewOf(domain.KindToken, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokenDigests)
		var name []byte
		if b != nil {
			name = b.Get([]byte(digest))
		}
		if name == nil {
			return fmt.Errorf("token: %w", domain.ErrNotFound)
		}
		var err error
		t, err = db.tokens.get(tx, string(name))
		return err
	})
	return t, err
}

// ListTokens returns every token by name, revoked and expired ones included.
func (db *DB) ListTokens() ([]domain.Token, error) {
	out := []domain.Token{}
	err := db.viewOf(domain.KindToken, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var st storedToken
			if err := json.Unmarshal(v, &st); err != nil {
				return err
			}
			st.Token.Digest = st.Digest
			out = append(out, st.Token)
			return nil
		})
	})
	return out, err
}

// tokenCache keeps the tokens read, decoded, with the stored bytes they were decoded from: a
// read whose stored bytes are the same takes the decoded token instead of decoding them again
// (every authenticated request reads its token). The file stays what is read; the cache only
// saves the decoding.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]cachedToken
}

type cachedToken struct {
	stored []byte
	token  domain.Token
}

// tokenCacheMax bounds the tokens cached; past it the cache starts again empty.
const tokenCacheMax = 4096

// get returns token name as tx holds it.
func (c *tokenCache) get(tx *bolt.Tx, name string) (domain.Token, error) {
	b := tx.Bucket(bucketTokens)
	var v []byte
	if b != nil {
		v = b.Get([]byte(name))
	}
	if v == nil {
		return domain.Token{}, fmt.Errorf("token %s: %w", name, domain.ErrNotFound)
	}
	c.mu.Lock()
	hit, ok := c.m[name]
	c.mu.Unlock()
	if ok && bytes.Equal(hit.stored, v) {
		return hit.token.Clone(), nil
	}
	var st storedToken
	if err := json.Unmarshal(v, &st); err != nil {
		return domain.Token{}, err
	}
	st.Token.Digest = st.Digest
	c.mu.Lock()
	if c.m == nil || len(c.m) >= tokenCacheMax {
		c.m = map[string]cachedToken{}
	}
	c.m[name] = cachedToken{stored: bytes.Clone(v), token: st.Token.Clone()}
	c.mu.Unlock()
	return st.Token, nil
}
