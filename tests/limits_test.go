package tests

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Input that passes the body's checks but cannot be stored as it is gets a 4xx that says why,
// never a 500, and writes nothing.
func TestInputBeyondWhatTheLogStores(t *testing.T) {
	l := startLedger(t)
	m := l.mem(map[string]any{"memory_type": "knowledge", "content": "expires some day"})
	before := l.lastSeq()

	// RFC 3339 writes years 0 to 9999 only; these are outside once in UTC.
	for _, until := range []string{"9999-12-31T23:00:00-05:00", "0000-01-01T00:30:00+01:00"} {
		res := l.do("POST", "/memory", map[string]any{"memory_type": "knowledge", "content": "late", "valid_until": until})
		requireProblem(t, res, 400, "valid_until", "between the years 0 and 9999")
		res = l.do("PUT", "/memory/"+m.ID, map[string]any{"valid_until": until})
		requireProblem(t, res, 400, "valid_until", "between the years 0 and 9999")
	}

	// A body well under the cap whose event is over the log's largest message.
	chunks := make([]map[string]any, 10000)
	for i := range chunks {
		chunks[i] = map[string]any{"content": "x"}
	}
	res := l.do("POST", "/documents", map[string]any{"file_path": "big.md", "title": "big", "chunks": chunks})
	requireProblem(t, res, 413, "", "bytes encoded", "at most")

	require.Equal(t, before, l.lastSeq(), "nothing was written")
	require.Equal(t, 200, l.do("GET", "/memory/"+m.ID, nil).Status)
}
