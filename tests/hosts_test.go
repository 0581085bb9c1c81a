package tests

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
)

// hostRequest sends a request to l with the Host header host.
func hostRequest(t *testing.T, l *ledger, method, path, host, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, l.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Host = host
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// A request whose Host is not one the server answers to (a DNS rebinding page sends its own
// name, with a valid Origin for it) is refused before anything else, reads and writes alike;
// --allowed-hosts adds names. Every answer forbids framing and carries the pages' CSP.
func TestForgedHostRefused(t *testing.T) {
	l := startLedger(t, withConfig(func(c *app.Config) { c.AllowedHosts = "memory.example.org" }))
	before := l.lastSeq()
	for _, forged := range []string{"rebind.attacker.example", "rebind.attacker.example:8100", "127.0.0.2"} {
		res := hostRequest(t, l, "POST", "/memory", forged, `{"memory_type":"knowledge","content":"rebound"}`)
		requireProblem(t, res, http.StatusMisdirectedRequest, "Host", "is not one this server answers to", "--allowed-hosts")
		requireProblem(t, hostRequest(t, l, "GET", "/memory", forged, ""), http.StatusMisdirectedRequest, "Host")
	}
	require.Equal(t, before, l.lastSeq(), "nothing written")
	for _, ok := range []string{"localhost:8100", "127.0.0.1", "memory.example.org", "MEMORY.example.org:443"} {
		require.Equal(t, http.StatusOK, hostRequest(t, l, "GET", "/memory", ok, "").Status, ok)
	}
	res := hostRequest(t, l, "GET", "/ui/", "localhost", "")
	require.Equal(t, "DENY", res.Header.Get("X-Frame-Options"))
	require.Contains(t, res.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	require.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'self'")
}
