package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

func TestBadInput(t *testing.T) {
	l := startLedger(t)
	active := l.mem(map[string]any{"memory_type": "preference", "content": "likes tea"})
	cand := l.mem(map[string]any{"memory_type": "preference", "content": "likes coffee", "status": "candidate"})
	activeBefore, candBefore := l.get(active.ID), l.get(cand.ID)

	valid := func(extra map[string]any) map[string]any {
		m := map[string]any{"memory_type": "knowledge", "content": "the sky is blue"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tags := make([]string, 11)
	for i := range tags {
		tags[i] = fmt.Sprintf("tag-%d", i)
	}
	huge := `{"memory_type":"knowledge","content":"` + strings.Repeat("x", handlersMaxBody+10) + `"}`

	cases := []struct {
		name    string
		method  string
		path    string
		body    any
		headers []string
		status  int
		field   string   // "" for problems about no field
		detail  []string // substrings of the detail
	}{
		// The body.
		{"malformed JSON", "POST", "/memory", `{"memory_type": "knowledge", "content": }`, nil, 400, "body", []string{"malformed JSON"}},
		{"truncated JSON", "POST", "/memory", `{"memory_type": "knowledge"`, nil, 400, "body", []string{"JSON"}},
		{"empty body", "POST", "/memory", "", nil, 400, "body", []string{"empty"}},
		{"not an object", "POST", "/memory", `["knowledge"]`, nil, 400, "body", []string{"JSON object"}},
		{"trailing data", "POST", "/memory", `{"memory_type": "knowledge", "content": "x"} {"content": "y"}`, nil, 400, "body", []string{"single JSON object"}},
		{"trailing garbage", "POST", "/memory", `{"memory_type": "knowledge", "content": "x"} x`, nil, 400, "body", nil},
		{"unknown field", "POST", "/memory", valid(map[string]any{"colour": "red"}), nil, 400, "colour", []string{"unknown field"}},
		{"confidence as string", "POST", "/memory", valid(map[string]any{"confidence": "0.5"}), nil, 400, "confidence", []string{"number", "string"}},
		{"domain_tags as string", "POST", "/memory", valid(map[string]any{"domain_tags": "a,b"}), nil, 400, "domain_tags", []string{"array", "string"}},
		{"content as number", "POST", "/memory", valid(map[string]any{"content": 42}), nil, 400, "content", []string{"string", "number"}},
		{"oversize body", "POST", "/memory", huge, nil, 413, "", []string{"bytes"}},
		{"text/plain", "POST", "/memory", `{"memory_type": "knowledge", "content": "x"}`, []string{"Content-Type", "text/plain"}, 415, "", []string{"text/plain", "application/json"}},
		{"text/plain on promote", "POST", "/memory/" + cand.ID + "/promote", `{}`, []string{"Content-Type", "text/plain; charset=utf-8"}, 415, "", []string{"text/plain"}},

		// The fields of a create.
		{"unknown memory_type", "POST", "/memory", valid(map[string]any{"memory_type": "opinion"}), nil, 400, "memory_type", []string{"opinion", "preference"}},
		{"missing memory_type", "POST", "/memory", map[string]any{"content": "x"}, nil, 400, "memory_type", nil},
		{"unknown status", "POST", "/memory", valid(map[string]any{"status": "pending"}), nil, 400, "status", []string{"pending", "candidate"}},
		{"status invalid on create", "POST", "/memory", valid(map[string]any{"status": "invalid"}), nil, 400, "status", []string{"candidate or active"}},
		{"status superseded on create", "POST", "/memory", valid(map[string]any{"status": "superseded"}), nil, 400, "status", []string{"candidate or active"}},
		{"confidence -0.1", "POST", "/memory", valid(map[string]any{"confidence": -0.1}), nil, 400, "confidence", []string{"between 0 and 1", "-0.1"}},
		{"confidence 1.1", "POST", "/memory", valid(map[string]any{"confidence": 1.1}), nil, 400, "confidence", []string{"between 0 and 1", "1.1"}},
		{"empty content", "POST", "/memory", valid(map[string]any{"content": ""}), nil, 400, "content", []string{"empty"}},
		{"whitespace content", "POST", "/memory", valid(map[string]any{"content": " \t\n "}), nil, 400, "content", []string{"empty"}},
		{"content over 2000 chars", "POST", "/memory", valid(map[string]any{"content": strings.Repeat("é", 2001)}), nil, 400, "content", []string{"2001", "2000"}},
		{"11 distinct tags", "POST", "/memory", valid(map[string]any{"domain_tags": tags}), nil, 400, "domain_tags", []string{"11", "10"}},
		{"bad project", "POST", "/memory", valid(map[string]any{"project": "My Project"}), nil, 400, "project", []string{"My Project", "kebab-case"}},
		{"bad valid_until", "POST", "/memory", valid(map[string]any{"valid_until": "next tuesday"}), nil, 400, "valid_until", []string{"next tuesday", "RFC 3339"}},
		{"valid_until as number", "POST", "/memory", valid(map[string]any{"valid_until": 1700000000}), nil, 400, "valid_until", []string{"RFC 3339"}},
		{"bad actor", "POST", "/memory", valid(nil), []string{"X-Actor", "bad actor!"}, 400, "X-Actor", []string{"bad actor!"}},

		// Updates and transitions.
		{"PUT with no fields", "PUT", "/memory/" + active.ID, map[string]any{}, nil, 400, "body", []string{"no field"}},
		{"PUT with only a note", "PUT", "/memory/" + active.ID, map[string]any{"note": "why"}, nil, 400, "body", []string{"no field"}},
		{"PUT with a bad field", "PUT", "/memory/" + active.ID, map[string]any{"confidence": 2}, nil, 400, "confidence", []string{"between 0 and 1"}},
		{"PUT an unknown status", "PUT", "/memory/" + active.ID, map[string]any{"status": "archived"}, nil, 400, "status", []string{"archived"}},
		{"PUT active to candidate", "PUT", "/memory/" + active.ID, map[string]any{"status": "candidate"}, nil, 409, "", []string{"is active"}},
		{"PUT project", "PUT", "/memory/" + active.ID, map[string]any{"project": "p-2"}, nil, 400, "project", []string{"unknown field"}},
		{"reinforce delta 2", "POST", "/memory/" + active.ID + "/reinforce", map[string]any{"delta": 2}, nil, 400, "delta", []string{"2"}},
		{"reinforce delta -0.1", "POST", "/memory/" + active.ID + "/reinforce", map[string]any{"delta": -0.1}, nil, 400, "delta", nil},
		{"bad If-Match", "PUT", "/memory/" + active.ID, map[string]any{"content": "x"}, []string{"If-Match", "abc"}, 400, "If-Match", []string{"abc"}},
		{"stale If-Match", "PUT", "/memory/" + active.ID, map[string]any{"content": "x"}, []string{"If-Match", `"999"`}, 412, "", []string{"999"}},
		{"superseded_by on invalidate", "POST", "/memory/" + active.ID + "/invalidate", map[string]any{"superseded_by": cand.ID}, nil, 400, "superseded_by", nil},
		{"promote of a missing id", "POST", "/memory/no-such-id/promote", nil, nil, 404, "", []string{"no-such-id"}},
		// An id that cannot name a memory (not a log subject token) is as unknown as any other.
		{"promote of an id with a dot", "POST", "/memory/a.b/promote", nil, nil, 404, "", []string{"a.b"}},
		{"update of an id with a dot", "PUT", "/memory/a.b", map[string]any{"content": "x"}, nil, 404, "", []string{"a.b"}},
		{"update of a missing id", "PUT", "/memory/no-such-id", map[string]any{"content": "x"}, nil, 404, "", []string{"no-such-id"}},
		{"promote of an active memory", "POST", "/memory/" + active.ID + "/promote", nil, nil, 409, "", []string{"is active", "candidate"}},
		{"reject of an active memory", "POST", "/memory/" + active.ID + "/reject", nil, nil, 409, "", []string{"is active"}},
		{"supersede of a candidate", "POST", "/memory/" + cand.ID + "/supersede", nil, nil, 409, "", []string{"is candidate"}},
		{"invalidate of a candidate", "POST", "/memory/" + cand.ID + "/invalidate", nil, nil, 409, "", []string{"is candidate"}},

		// Reads.
		{"get a missing id", "GET", "/memory/no-such-id", nil, nil, 404, "", []string{"no-such-id"}},
		{"list limit 0", "GET", "/memory?limit=0", nil, nil, 400, "limit", []string{"1 to 500"}},
		{"list limit 501", "GET", "/memory?limit=501", nil, nil, 400, "limit", []string{"501"}},
		{"list limit x", "GET", "/memory?limit=x", nil, nil, 400, "limit", []string{`"x"`}},
		{"list unknown status", "GET", "/memory?status=archived", nil, nil, 400, "status", []string{"archived"}},
		{"list unknown memory_type", "GET", "/memory?memory_type=opinion", nil, nil, 400, "memory_type", []string{"opinion"}},
		{"list bad project", "GET", "/memory?project=My%20Project", nil, nil, 400, "project", nil},
		{"list bad cursor", "GET", "/memory?cursor=abc", nil, nil, 400, "cursor", []string{"abc"}},
		{"list cursor 0", "GET", "/memory?cursor=0", nil, nil, 400, "cursor", nil},
		{"list unknown parameter", "GET", "/memory?colour=red", nil, nil, 400, "colour", []string{"unknown query parameter"}},
		{"audit unknown action", "GET", "/admin/audit/recent?action=archived", nil, nil, 400, "action", []string{"archived"}},
		{"audit bad since", "GET", "/admin/audit/recent?since=yesterday", nil, nil, 400, "since", []string{"yesterday"}},
		{"audit limit 0", "GET", "/admin/audit/recent?limit=0", nil, nil, 400, "limit", nil},
		{"audit unknown parameter", "GET", "/admin/audit/recent?memory=x", nil, nil, 400, "memory", nil},

		// Jobs.
		{"auto-promote min_reference_count 0", "POST", "/admin/memory/auto-promote", map[string]any{"min_reference_count": 0}, nil, 400, "min_reference_count", nil},
		{"auto-promote min_confidence 2", "POST", "/admin/memory/auto-promote", map[string]any{"min_confidence": 2}, nil, 400, "min_confidence", nil},
		{"expire max_age_days 0", "POST", "/admin/memory/expire-candidates", map[string]any{"max_age_days": 0}, nil, 400, "max_age_days", nil},

		// Routes.
		{"PATCH", "PATCH", "/memory/" + active.ID, map[string]any{"content": "x"}, nil, 405, "", []string{"PATCH", "PUT"}},
		{"unknown route", "GET", "/memories", nil, nil, 404, "", []string{"/memories"}},
	}

	seq := l.lastSeq()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := l.do(tc.method, tc.path, tc.body, tc.headers...)
			p := requireProblem(t, res, tc.status, tc.field, tc.detail...)
			if tc.field == "" {
				require.Empty(t, p.Field, "detail: %s", p.Detail)
			}
			require.Equal(t, strings.SplitN(tc.path, "?", 2)[0], p.Instance)
			if tc.status == http.StatusMethodNotAllowed {
				require.Contains(t, res.Header.Get("Allow"), "PUT")
			}
			require.Equal(t, seq, l.lastSeq(), "nothing written")
		})
	}

	// Nothing changed either memory, and no memory was created.
	require.Equal(t, activeBefore, l.get(active.ID))
	require.Equal(t, candBefore, l.get(cand.ID))
	require.Len(t, l.auditOf(active.ID), 1)
	require.Len(t, l.auditOf(cand.ID), 1)
	h := l.health()
	require.Equal(t, seq, h.LastSeq)
	require.Equal(t, seq, h.Projections["memories"])

	// The ledger still works.
	m := l.act("POST", "/memory/"+cand.ID+"/promote", nil)
	require.Equal(t, domain.StatusActive, m.Status)
}

// handlersMaxBody is the API's body limit: 1 MiB.
const handlersMaxBody = 1 << 20
