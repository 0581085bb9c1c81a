package tests

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore/eventstoretest"
	mlledger "github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/handlers/subscriptions"
)

func plainSHA256(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// issuedEvent returns the token.issued event of token name as the log holds it, raw and
// decoded.
func issuedEvent(t *testing.T, l *ledger, name string) ([]byte, domain.TokenIssued) {
	t.Helper()
	evs, _, err := l.Main.Store.Load(context.Background(), domain.KindToken, name)
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	p, ok := evs[0].Data.(domain.TokenIssued)
	require.True(t, ok, "%T", evs[0].Data)
	msg, err := l.Main.Store.JetStream().Stream(context.Background(), l.Main.Store.Stream)
	require.NoError(t, err)
	raw, err := msg.GetMsg(context.Background(), evs[0].Seq)
	require.NoError(t, err)
	return raw.Data, p
}

// A new token's event holds the keyed digest of its secret (HMAC-SHA256 under the key derived
// from the server key file), says so with the key's id, and holds no plain SHA-256 of the
// secret; the token list shows the kind and the key. The first start's admin token and one
// that token recover issues are keyed too, and work.
func TestTokenDigestKeyed(t *testing.T) {
	l := startLedger(t)
	key, err := app.LoadTokenKey(filepath.Join(l.cfg.Data, subscriptions.KeyFileName))
	require.NoError(t, err)
	secret := l.token("kim", "reader", nil)

	raw, p := issuedEvent(t, l, "kim")
	require.Equal(t, domain.DigestHMAC, p.DigestKind)
	require.Equal(t, key.ID, p.KeyID)
	require.Equal(t, key.Digest(secret), p.Digest)
	require.NotEqual(t, plainSHA256(secret), p.Digest, "no plain SHA-256 of the secret")
	require.NotContains(t, string(raw), plainSHA256(secret))
	require.NotContains(t, string(raw), secret)
	require.Contains(t, string(raw), `"version":3`)
	l.expect(http.StatusOK, "GET", "/memory", nil, "Authorization", "Bearer "+secret)

	var list struct {
		Tokens []map[string]any `json:"tokens"`
	}
	l.expect(http.StatusOK, "GET", "/admin/tokens", nil).Decode(t, &list)
	require.Len(t, list.Tokens, 2)
	for _, tok := range list.Tokens {
		require.Equal(t, domain.DigestHMAC, tok["digest_kind"], tok["name"])
		require.Equal(t, key.ID, tok["key_id"], tok["name"])
		require.NotContains(t, tok, "digest")
	}

	// The first start's admin token.
	admin := adminToken(t, l.cfg.Data)
	_, p = issuedEvent(t, l, app.AdminTokenName)
	require.Equal(t, key.Digest(admin), p.Digest)

	// token recover, with the service stopped.
	l.stop()
	var out strings.Builder
	var errOut strings.Builder
	require.Equal(t, 0, app.Run(context.Background(), []string{"token", "recover", "--data", l.cfg.Data, "--name", "rescue"}, &out, &errOut), errOut.String())
	l.start()
	recovered := adminToken(t, l.cfg.Data)
	require.NotEqual(t, admin, recovered)
	_, p = issuedEvent(t, l, "rescue")
	require.Equal(t, domain.DigestHMAC, p.DigestKind)
	require.Equal(t, key.Digest(recovered), p.Digest)
	l.expect(http.StatusOK, "GET", "/admin/tokens", nil, "Authorization", "Bearer "+recovered)
}

// A token issued before the digest was keyed (token.issued version 2: the plain SHA-256 of
// its secret) still authenticates, before and after a restart, and can be revoked; a
// version-2 digest is never taken for a keyed one.
func TestTokenIssuedBeforeKeyedDigest(t *testing.T) {
	l := startLedger(t)
	secret := mlledger.NewTokenSecret()
	raw := `{"id":"0195e7c4-1a2b-7c3d-8e4f-00000000aa01","type":"token.issued","version":2,"aggregate_id":"old-reviewer",` +
		`"actor":"admin","principal":"admin","time":"2026-11-01T10:00:00Z","data":{"role":"reviewer","on_behalf":false,"digest":"` +
		plainSHA256(secret) + `"}}`
	js := l.Main.Store.JetStream()
	ack, err := js.Publish(context.Background(), "ledger.token.old-reviewer", []byte(raw), jetstream.WithExpectLastSequencePerSubject(0))
	require.NoError(t, err)
	caughtUp(t, l, ack.Sequence)

	auth := []string{"Authorization", "Bearer " + secret}
	l.expect(http.StatusOK, "GET", "/memory", nil, auth...)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "written before the keyed digest", "status": "candidate"})
	l.expect(http.StatusOK, "POST", "/memory/"+m.ID+"/promote", nil, auth...)
	require.Equal(t, "old-reviewer", l.auditOf(m.ID)[1].Actor)

	l.restart()
	l.expect(http.StatusOK, "GET", "/memory", nil, auth...)
	var tok map[string]any
	for _, x := range l.expect(http.StatusOK, "GET", "/admin/tokens", nil).JSON(t)["tokens"].([]any) {
		if x.(map[string]any)["name"] == "old-reviewer" {
			tok = x.(map[string]any)
		}
	}
	require.Equal(t, domain.DigestSHA256, tok["digest_kind"])
	require.NotContains(t, tok, "key_id")

	// The keyed digest of this secret is not in the log: only the plain lookup finds it, and
	// only for a token recorded with the plain digest.
	l.expect(http.StatusOK, "DELETE", "/admin/tokens/old-reviewer", nil)
	requireProblem(t, l.do("GET", "/memory", nil, auth...), http.StatusUnauthorized, "", "revoked")
}

// An instance whose key file differs from the one the tokens were issued under refuses them
// as unknown (401, never a 500 or a panic) and says in its log which tokens, which keys and
// which file to copy: at the start, once its projections hold the tokens, and when such a
// token is refused.
func TestTokenWrongKey(t *testing.T) {
	var log syncBuffer
	dir := t.TempDir()
	l := startLedger(t, withConfig(func(c *app.Config) { c.Data = dir }), withLog(&log))
	secret := l.token("kim", "reader", nil)
	keyPath := filepath.Join(dir, subscriptions.KeyFileName)
	old, err := app.LoadTokenKey(keyPath)
	require.NoError(t, err)
	l.stop()

	kept, err := os.ReadFile(keyPath)
	require.NoError(t, err)
	other := make([]byte, 32)
	rand.Read(other)
	require.NoError(t, os.WriteFile(keyPath, []byte(hex.EncodeToString(other)+"\n"), 0o600))
	now, err := app.LoadTokenKey(keyPath)
	require.NoError(t, err)
	require.NotEqual(t, old.ID, now.ID)
	l.start()
	eventually(t, func() bool {
		return strings.Contains(log.String(), "tokens issued under another server key cannot sign in on this instance")
	}, "the start says so")
	res := l.do("GET", "/memory", nil, "Authorization", "Bearer "+secret)
	requireProblem(t, res, http.StatusUnauthorized, "", "not known")
	out := log.String()
	line := out[strings.Index(out, "tokens issued under another server key"):]
	line = line[:strings.IndexByte(line, '\n')]
	for _, want := range []string{"kim", app.AdminTokenName, old.ID, now.ID, keyPath, "copy the file"} {
		require.Contains(t, line, want)
	}

	// With the key file copied back, the tokens work again.
	l.stop()
	require.NoError(t, os.WriteFile(keyPath, kept, 0o600))
	l.start()
	l.expect(http.StatusOK, "GET", "/memory", nil, "Authorization", "Bearer "+secret)
}

// Two instances that start at the same time on an empty log both find no token and both
// write an admin.token before they issue the admin token; the one whose issue loses removes
// its file (it holds a secret no token has) and says so. Every admin.token left works.
func TestFirstStartRaceLeavesNoDeadAdminToken(t *testing.T) {
	url := eventstoretest.StartServer(t)
	key := filepath.Join(t.TempDir(), subscriptions.KeyFileName)
	var log syncBuffer
	var both sync.WaitGroup
	both.Add(2)
	nodes := make([]*ledger, 2)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i] = startLedger(t, withLog(&log), withConfig(func(c *app.Config) { c.NatsURL, c.SubscriptionKeyFile = url, key }),
				func(l *ledger) {
					l.beforeAdminToken = func() {
						// Both have found the log without tokens before either issues.
						// Bounded: an instance whose start failed before this point never arrives.
						both.Done()
						arrived := make(chan struct{})
						go func() { both.Wait(); close(arrived) }()
						select {
						case <-arrived:
						case <-time.After(time.Minute):
							t.Errorf("the other instance did not find the log without tokens within a minute (its start failed?)")
						}
					}
				})
		}()
	}
	wg.Wait()
	var files int
	for _, n := range nodes {
		b, err := os.ReadFile(filepath.Join(n.cfg.Data, "admin.token"))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		files++
		for _, m := range nodes {
			m.expect(http.StatusOK, "GET", "/admin/tokens", nil, "Authorization", "Bearer "+strings.TrimSpace(string(b)))
		}
	}
	require.Equal(t, 1, files, "one instance issued the admin token")
	require.Contains(t, log.String(), "another instance on this log issued the first admin token at the same time")
}
