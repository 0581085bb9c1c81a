package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

func TestRolesAllow(t *testing.T) {
	require.True(t, domain.RoleAdmin.Allows(domain.RoleReviewer))
	require.True(t, domain.RoleReviewer.Allows(domain.RoleWriter))
	require.True(t, domain.RoleWriter.Allows(domain.RoleReader))
	require.False(t, domain.RoleWriter.Allows(domain.RoleReviewer), "a writer cannot approve candidates")
	require.False(t, domain.RoleReader.Allows(domain.RoleWriter))
	require.False(t, domain.Role("root").Allows(domain.RoleReader))
	require.False(t, domain.RoleAdmin.Allows(domain.Role("")))
}

func TestTokenLifecycle(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	meta := domain.Meta{EventID: "e1", Actor: "admin", Time: now}
	digest := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	exp := now.Add(time.Hour)
	cmd := domain.IssueToken{Name: "alice", Role: domain.RoleReviewer, ExpiresAt: &exp, Digest: digest, KeyID: "5f0e8a2c1b3d4e6f"}

	for name, bad := range map[string]func(*domain.IssueToken){
		"name":    func(c *domain.IssueToken) { c.Name = "Alice.Smith" },
		"role":    func(c *domain.IssueToken) { c.Role = "root" },
		"expires": func(c *domain.IssueToken) { past := now.Add(-time.Second); c.ExpiresAt = &past },
		"key id":  func(c *domain.IssueToken) { c.KeyID = "" },
	} {
		c := cmd
		bad(&c)
		_, err := domain.DecideIssueToken(domain.Token{}, c, meta)
		require.ErrorIs(t, err, domain.ErrInvalid, name)
	}

	ev, err := domain.DecideIssueToken(domain.Token{}, cmd, meta)
	require.NoError(t, err)
	ev.Seq = 3
	tok := domain.ApplyToken(domain.Token{}, ev)
	require.Equal(t, "alice", tok.Name)
	require.Equal(t, domain.RoleReviewer, tok.Role)
	require.Equal(t, domain.DigestHMAC, tok.DigestKind, "a new token's digest is keyed")
	require.Equal(t, "5f0e8a2c1b3d4e6f", tok.KeyID)
	require.False(t, tok.CanActOnBehalf())
	require.NoError(t, tok.Usable(now))
	require.ErrorContains(t, tok.Usable(exp), "expired")
	_, err = domain.DecideIssueToken(tok, cmd, meta)
	require.ErrorIs(t, err, domain.ErrConflict, "a name is issued once")

	rev, err := domain.DecideRevokeToken(tok, domain.Meta{EventID: "e2", Actor: "admin", Time: now.Add(time.Minute)})
	require.NoError(t, err)
	tok = domain.ApplyToken(tok, rev)
	require.ErrorContains(t, tok.Usable(now.Add(2*time.Minute)), "revoked")
	_, err = domain.DecideRevokeToken(tok, meta)
	require.ErrorIs(t, err, domain.ErrConflict)
	_, err = domain.DecideRevokeToken(domain.Token{}, meta)
	require.ErrorIs(t, err, domain.ErrNotFound)
	require.True(t, domain.Token{Role: domain.RoleAdmin}.CanActOnBehalf(), "an admin always may")
}

func TestSignOut(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	meta := domain.Meta{EventID: "e1", Actor: "rita", Principal: "rita", Time: now}
	tok := domain.Token{Name: "rita", Role: domain.RoleReviewer, Seq: 3}
	ev, err := domain.DecideSignOut(tok, "q83vEjRWeJq83vEjRWeJqw", now.Add(time.Hour), meta)
	require.NoError(t, err)
	require.Equal(t, "rita", ev.AggregateID)
	require.Equal(t, domain.TokenSignedOut{Session: "q83vEjRWeJq83vEjRWeJqw", ExpiresAt: now.Add(time.Hour)}, ev.Data)
	require.Equal(t, tok, domain.ApplyToken(tok, ev), "a sign-out changes no token")
	_, err = domain.DecideSignOut(domain.Token{}, "q83vEjRWeJq83vEjRWeJqw", now, meta)
	require.ErrorIs(t, err, domain.ErrNotFound)
	_, err = domain.DecideSignOut(tok, "", now, meta)
	require.ErrorIs(t, err, domain.ErrInvalid)
}
