package tests

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
)

// A body sent too slowly is cut after the read timeout (nothing written), while an alert
// watch stream opened before it goes on past that timeout and still delivers.
func TestSlowBodyCutAlertWatchStays(t *testing.T) {
	const timeout = 500 * time.Millisecond
	l := startLedger(t, withConfig(func(c *app.Config) { c.ReadTimeout = timeout }))
	sc, _ := alertWatchStream(t, l, "")
	before := l.lastSeq()

	conn, err := net.Dial("tcp", strings.TrimPrefix(l.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /memory HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "+adminToken(t, l.cfg.Data)+
		"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"memory_type\":\"knowledge\",")
	require.NoError(t, err)
	// The client stalls; the server gives up on the body and closes the connection (a
	// generous deadline for a loaded machine, not a limit on the server).
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(time.Minute)))
	_, err = io.ReadAll(conn)
	require.NoError(t, err, "the server closed the connection (EOF), not our deadline")
	require.Equal(t, before, l.lastSeq(), "nothing written from a cut body")

	// The watch outlived several read timeouts and still streams.
	time.Sleep(3 * timeout)
	a := alertRaise(t, l, map[string]any{"severity": "warning", "title": "after the slow body"})
	got := alertNextLine(t, sc)
	require.Equal(t, a.ID, got.ID)
}
