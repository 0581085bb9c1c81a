package tests

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCreateAndRead(t *testing.T) {
	l := startLedger(t)
	m := l.create(map[string]any{"memory_type": "preference", "content": " likes tea ", "project": "p-1"})
	require.Equal(t, "likes tea", m["content"])
	require.Equal(t, "active", m["status"])
	res := l.do("GET", "/memory/"+m["id"].(string), nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Equal(t, m, res.JSON(t))
	require.Equal(t, `"2"`, res.Header.Get("ETag"), "event 1 is the first start's admin token")
}
