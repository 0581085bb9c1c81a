package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// memledger token create prints the secret alone on stdout; list shows the tokens; revoke
// makes the next request with the token a 401. Each needs an admin's token.
func TestTokenCommands(t *testing.T) {
	l := startLedger(t)
	addr := strings.TrimPrefix(l.URL, "http://")
	admin := adminToken(t, l.cfg.Data)

	code, out, errOut := runApp(t, "token", "create", "--addr", addr, "--token", admin, "--name", "alice", "--role", "reviewer", "--expires", "30d")
	require.Equal(t, 0, code, errOut)
	secret := strings.TrimSuffix(out, "\n")
	require.NotContains(t, secret, "\n", "only the secret on stdout")
	require.True(t, strings.HasPrefix(secret, "mlt_"), out)
	require.Contains(t, errOut, "shown only this once")

	// alice may promote; the audit names her, through herself.
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "to review", "status": "candidate"})
	l.act("POST", "/memory/"+m.ID+"/promote", nil, "Authorization", "Bearer "+secret)
	audit := l.auditOf(m.ID)
	require.Equal(t, "alice", audit[len(audit)-1].Actor)
	require.Equal(t, "alice", audit[len(audit)-1].Principal)

	code, out, errOut = runApp(t, "token", "list", "--addr", addr, "--token", admin)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^alice\s+reviewer\s+false\s+admin\s+\S+\s+`+time.Now().UTC().Add(30*24*time.Hour).Format("2006-01-02"), out)
	require.NotContains(t, out, secret)

	// A reviewer may not issue tokens: the service's 403 detail is the command's error.
	code, _, errOut = runApp(t, "token", "create", "--addr", addr, "--token", secret, "--name", "bob", "--role", "admin")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "needs the role admin")

	code, out, errOut = runApp(t, "token", "revoke", "--addr", addr, "--token", admin, "--name", "alice", "--note", "left the team")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "revoked alice")
	requireProblem(t, l.do("GET", "/memory/"+m.ID, nil, "Authorization", "Bearer "+secret), http.StatusUnauthorized, "", "revoked")

	// Bad input is refused before anything is sent, or by the service with its detail.
	code, _, errOut = runApp(t, "token", "create", "--addr", addr, "--token", admin, "--name", "carol")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--name and --role are required")
	code, _, errOut = runApp(t, "token", "create", "--addr", addr, "--token", admin, "--name", "carol", "--role", "writer", "--expires", "soon")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--expires")
	code, _, errOut = runApp(t, "token", "create", "--addr", addr, "--token", admin, "--name", "alice", "--role", "writer")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "never reused")
}
