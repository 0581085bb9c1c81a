package tests

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore/eventstoretest"
)

// Two instances on one NATS server: a token revoked on one is refused by the other once the
// other's tokens projection has applied the revocation (no cache in front of it), and at
// once when the request asks for that position with min_seq; a stream open on the other
// instance ends too.
func TestRevocationOnAnotherInstance(t *testing.T) {
	url := eventstoretest.StartServer(t)
	a := startLedger(t, withConfig(func(c *app.Config) { c.NatsURL = url }))
	dir := joinDir(t, a)
	// The other instance's projections can be held back at the revocation.
	var hold atomic.Bool
	release := make(chan struct{})
	b := startLedger(t, withConfig(func(c *app.Config) { c.NatsURL, c.Data = url, dir }), func(l *ledger) {
		l.projectionsHook = func(batch []domain.Event) error {
			for _, ev := range batch {
				if _, ok := ev.Data.(domain.TokenRevoked); ok && hold.Load() {
					<-release
				}
			}
			return nil
		}
	})

	tok := "Bearer " + a.token("roamer", "reader", nil)
	// A token issued on one instance is known on the other once its projection has applied it
	// (a request is authenticated before its min_seq wait).
	deadline := time.Now().Add(30 * time.Second)
	for b.do("GET", "/memory", nil, "Authorization", tok).Status != http.StatusOK {
		require.True(t, time.Now().Before(deadline), "the other instance does not know the new token")
		time.Sleep(20 * time.Millisecond)
	}
	rd, body := openStream(t, b, "/events?from=now", "Authorization", tok)

	hold.Store(true)
	var rev struct {
		Seq uint64 `json:"seq"`
	}
	a.expect(http.StatusOK, "DELETE", "/admin/tokens/roamer", nil).Decode(t, &rev)
	require.NotZero(t, rev.Seq)
	// While the other instance has not applied the revocation, it still serves the token...
	b.expect(http.StatusOK, "GET", "/memory", nil, "Authorization", tok)
	// ...but a request asking for the revocation's position waits for it, and is refused.
	answer := make(chan response, 1)
	go func() {
		answer <- b.do("GET", "/memory?min_seq="+strconv.FormatUint(rev.Seq, 10), nil, "Authorization", tok)
	}()
	time.Sleep(200 * time.Millisecond)
	close(release)
	requireProblem(t, <-answer, http.StatusUnauthorized, "", "revoked")
	// And without it, once its projection has applied it.
	deadline = time.Now().Add(30 * time.Second)
	for b.do("GET", "/memory", nil, "Authorization", tok).Status != http.StatusUnauthorized {
		require.True(t, time.Now().Before(deadline), "the other instance still serves the revoked token")
		time.Sleep(20 * time.Millisecond)
	}
	lines := lastLines(t, rd, body)
	require.NotEmpty(t, lines)
	require.Contains(t, lines[len(lines)-1], `"end":"unauthenticated"`)
}
