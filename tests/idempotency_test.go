package tests

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

func TestIdempotentCreate(t *testing.T) {
	l := startLedger(t)
	body := map[string]any{"memory_type": "preference", "content": "prefers dark mode", "status": "candidate"}

	first := l.expect(http.StatusCreated, "POST", "/memory", body, "Idempotency-Key", "create-key-1")
	seq := l.lastSeq()
	second := l.expect(http.StatusCreated, "POST", "/memory", body, "Idempotency-Key", "create-key-1")

	require.Equal(t, string(first.Body), string(second.Body), "the same answer, byte for byte")
	require.Equal(t, first.Header.Get("ETag"), second.Header.Get("ETag"))
	require.Equal(t, first.Header.Get("Location"), second.Header.Get("Location"))
	require.Equal(t, "true", second.Header.Get("Idempotent-Replayed"))
	require.Empty(t, first.Header.Get("Idempotent-Replayed"))
	require.Equal(t, seq, l.lastSeq(), "the retry wrote nothing")

	var m domain.Memory
	first.Decode(t, &m)
	require.Equal(t, seq, m.Seq)
	entries := l.auditOf(m.ID)
	require.Len(t, entries, 1)
	require.Equal(t, "create-key-1", entries[0].EventID, "the key is the event id")
	require.Equal(t, []string{m.ID}, l.listAll(url.Values{}), "one memory")

	// The retry answers with the memory as it was created, even once it has moved on.
	l.act("POST", "/memory/"+m.ID+"/promote", nil)
	third := l.expect(http.StatusCreated, "POST", "/memory", body, "Idempotency-Key", "create-key-1")
	require.Equal(t, string(first.Body), string(third.Body))
	require.Len(t, l.auditOf(m.ID), 2)
}

func TestIdempotentPromote(t *testing.T) {
	l := startLedger(t)
	c := l.mem(map[string]any{"memory_type": "knowledge", "content": "deploys on Fridays", "status": "candidate"})

	first := l.expect(http.StatusOK, "POST", "/memory/"+c.ID+"/promote", map[string]any{"note": "ok"}, "Idempotency-Key", "promote-1", "X-Actor", "human-triage")
	seq := l.lastSeq()
	// A retry of a promote would be refused (the memory is active now) if it were not
	// recognized as a retry.
	second := l.expect(http.StatusOK, "POST", "/memory/"+c.ID+"/promote", map[string]any{"note": "ok"}, "Idempotency-Key", "promote-1", "X-Actor", "human-triage")
	require.Equal(t, string(first.Body), string(second.Body))
	require.Equal(t, first.Header.Get("ETag"), second.Header.Get("ETag"))
	require.Equal(t, seq, l.lastSeq(), "the retry wrote nothing")

	entries := l.auditOf(c.ID)
	require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionPromoted}, actions(entries))
	require.Equal(t, "promote-1", entries[1].EventID)
	require.Len(t, l.recent(url.Values{"action": {"promoted"}}), 1)
}

// An Idempotency-Key names one request: using it again for another memory or another
// action is a conflict, and writes nothing.
func TestIdempotencyKeyReuseIsConflict(t *testing.T) {
	l := startLedger(t)
	a := l.mem(map[string]any{"memory_type": "knowledge", "content": "a", "status": "candidate"}, "Idempotency-Key", "key-create-a")
	b := l.mem(map[string]any{"memory_type": "knowledge", "content": "b", "status": "candidate"})
	l.act("POST", "/memory/"+a.ID+"/promote", nil, "Idempotency-Key", "key-promote-a")
	seq := l.lastSeq()

	cases := []struct {
		name, method, path, key string
		body                    any
	}{
		{"promote key for another memory", "POST", "/memory/" + b.ID + "/promote", "key-promote-a", nil},
		{"create key for a promote", "POST", "/memory/" + b.ID + "/promote", "key-create-a", nil},
		{"create key for a promote of the same memory", "POST", "/memory/" + a.ID + "/reinforce", "key-create-a", nil},
		{"promote key for a create", "POST", "/memory", "key-promote-a", map[string]any{"memory_type": "knowledge", "content": "c"}},
		{"promote key for a reject of another memory", "POST", "/memory/" + b.ID + "/reject", "key-promote-a", nil},
		// The same memory, another action: the promote's answer is not the reinforce's.
		{"promote key for a reinforce of the same memory", "POST", "/memory/" + a.ID + "/reinforce", "key-promote-a", nil},
		{"promote key for an update of the same memory", "PUT", "/memory/" + a.ID, "key-promote-a", map[string]any{"content": "a2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := l.do(tc.method, tc.path, tc.body, "Idempotency-Key", tc.key)
			requireProblem(t, res, http.StatusConflict, "", tc.key)
			require.Equal(t, seq, l.lastSeq(), "nothing written")
		})
	}
	require.Len(t, l.auditOf(a.ID), 2)
	require.Len(t, l.auditOf(b.ID), 1)
	require.Equal(t, domain.StatusCandidate, l.get(b.ID).Status)

	// A malformed key is a bad request.
	res := l.do("POST", "/memory", map[string]any{"memory_type": "knowledge", "content": "d"}, "Idempotency-Key", "has a space")
	requireProblem(t, res, http.StatusBadRequest, "Idempotency-Key")
	require.Equal(t, seq, l.lastSeq())
}

func TestIdempotentCreateRetriedConcurrently(t *testing.T) {
	l := startLedger(t)
	seq := l.lastSeq()
	body := map[string]any{"memory_type": "episodic", "content": "went to Lisbon", "domain_tags": []string{"travel"}}

	rs := race(t, 10, func(int) (response, error) {
		return l.send("POST", "/memory", body, "Idempotency-Key", "concurrent-create")
	})
	var id string
	for i, r := range rs {
		require.Equal(t, http.StatusCreated, r.Status, "goroutine %d:\n%s", i, describe(rs))
		var m domain.Memory
		r.Decode(t, &m)
		if id == "" {
			id = m.ID
		}
		require.Equal(t, id, m.ID, "every retry answers with the same memory:\n%s", describe(rs))
		require.Equal(t, seq+1, m.Seq)
		require.Equal(t, string(rs[0].Body), string(r.Body))
	}
	require.Equal(t, seq+1, l.lastSeq(), "one event")
	require.Equal(t, []string{id}, l.listAll(url.Values{}), "one memory")
	require.Len(t, l.auditOf(id), 1)
}

// A promote retried while the first attempt is still in flight answers with the first
// attempt's result too: "a retried command returns the first result and writes nothing new".
func TestIdempotentPromoteRetriedConcurrently(t *testing.T) {
	l := startLedger(t)
	c := l.mem(map[string]any{"memory_type": "knowledge", "content": "uses bbolt", "status": "candidate"})
	seq := l.lastSeq()

	rs := race(t, 10, func(int) (response, error) {
		return l.send("POST", "/memory/"+c.ID+"/promote", nil, "Idempotency-Key", "concurrent-promote")
	})
	for i, r := range rs {
		require.Equal(t, http.StatusOK, r.Status, "goroutine %d:\n%s", i, describe(rs))
		require.Equal(t, string(rs[0].Body), string(r.Body))
	}
	require.Equal(t, seq+1, l.lastSeq(), "one event")
	require.Equal(t, []domain.Action{domain.ActionCreated, domain.ActionPromoted}, actions(l.auditOf(c.ID)))
}

// Writes other than a memory's refuse Idempotency-Key and If-Match instead of ignoring them.
func TestKeysOnlyOnMemoryWrites(t *testing.T) {
	l := startLedger(t)
	before := l.do("GET", "/health", nil).JSON(t)["last_seq"]
	for _, tc := range []struct {
		method, path, header string
		body                 any
	}{
		{"POST", "/admin/alerts", "Idempotency-Key", map[string]any{"title": "t"}},
		{"POST", "/projects", "Idempotency-Key", map[string]any{"id": "p-1"}},
		{"POST", "/project/state", "If-Match", map[string]any{"project": "p-1", "category": "fact", "key": "k", "value": "v"}},
		{"POST", "/documents", "Idempotency-Key", map[string]any{"file_path": "a.md"}},
	} {
		res := l.do(tc.method, tc.path, tc.body, tc.header, "x-1")
		require.Equal(t, 400, res.Status, "%s %s: %s", tc.method, tc.path, res.Body)
		require.Equal(t, tc.header, res.JSON(t)["field"])
	}
	require.Equal(t, before, l.do("GET", "/health", nil).JSON(t)["last_seq"], "nothing was written")
}
