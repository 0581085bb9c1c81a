package projections_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// A sign-out is kept while its session could still be presented, and a day past its end (for
// an instance whose clock is behind), then dropped by a later sign-out: the bucket does not
// grow with every sign-out ever made.
func TestSignOutsOfEndedSessionsArePruned(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "projections.db"))
	p := projections.Tokens{}
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	seq := uint64(0)
	signOut := func(token, session string, at, ends time.Time) {
		t.Helper()
		seq++
		ev := domain.NewEvent(token, domain.Meta{EventID: session, Actor: token, Time: at},
			domain.TokenSignedOut{Session: session, ExpiresAt: ends})
		ev.Seq = seq
		require.NoError(t, db.Bolt().Update(func(tx *bolt.Tx) error {
			if err := p.Init(tx); err != nil {
				return err
			}
			return p.Apply(tx, ev)
		}))
	}
	signedOut := func(token, session string) bool {
		t.Helper()
		out, err := db.SignedOut(token, session)
		require.NoError(t, err)
		return out
	}
	signOut("alice", "s1", t0, t0.Add(time.Hour))
	signOut("bob", "s2", t0.Add(2*time.Hour), t0.Add(12*time.Hour))
	require.True(t, signedOut("alice", "s1"), "an hour past its end, a sign-out is kept")
	require.True(t, signedOut("bob", "s2"))

	signOut("carol", "s3", t0.Add(26*time.Hour), t0.Add(30*time.Hour))
	require.False(t, signedOut("alice", "s1"), "a day past its session's end, a sign-out is dropped")
	require.True(t, signedOut("bob", "s2"), "a sign-out whose session ended less than a day ago is kept")
	require.True(t, signedOut("carol", "s3"))
}

// A token read again is what the file holds now: a revocation applied after a read shows in the
// next read, and a change made to a token read does not reach the next one.
func TestATokenReadAgainIsWhatIsStoredNow(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "projections.db"))
	p := projections.Tokens{}
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	expires := t0.Add(24 * time.Hour)
	seq := uint64(0)
	apply := func(p projections.Projection, payload domain.Payload) {
		t.Helper()
		seq++
		ev := domain.NewEvent("alice", domain.Meta{EventID: fmt.Sprintf("event-%d", seq), Actor: "admin", Time: t0}, payload)
		ev.Seq = seq
		require.NoError(t, db.Bolt().Update(func(tx *bolt.Tx) error {
			if err := p.Init(tx); err != nil {
				return err
			}
			return p.Apply(tx, ev)
		}))
	}
	apply(p, domain.TokenIssued{Role: domain.RoleReader, Digest: "d-alice", DigestKind: domain.DigestSHA256, ExpiresAt: &expires})

	first, err := db.TokenByDigest("d-alice")
	require.NoError(t, err)
	require.Nil(t, first.RevokedAt)
	require.Equal(t, expires, *first.ExpiresAt)
	*first.ExpiresAt = t0.Add(1000 * time.Hour)
	for range 2 {
		again, err := db.TokenByDigest("d-alice")
		require.NoError(t, err)
		require.Equal(t, expires, *again.ExpiresAt, "a change to a token read does not reach the next read")
		require.Equal(t, domain.RoleReader, again.Role)
		*again.ExpiresAt = t0.Add(1000 * time.Hour) // the caller's copy
		again.Role = domain.RoleAdmin
	}

	apply(p, domain.TokenRevoked{})
	revoked, err := db.TokenByDigest("d-alice")
	require.NoError(t, err)
	require.NotNil(t, revoked.RevokedAt, "the revocation applied after the first reads shows")
	byName, err := db.Token("alice")
	require.NoError(t, err)
	require.NotNil(t, byName.RevokedAt)
}
