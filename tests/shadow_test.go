package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/jobs"
	commands "github.com/memledger/memledger/handlers/ledger"
	"github.com/stretchr/testify/require"
)

func (l *ledger) shadow(body map[string]any) jobs.ShadowReport {
	l.t.Helper()
	var rep jobs.ShadowReport
	l.expect(http.StatusOK, "POST", "/admin/shadow", body).Decode(l.t, &rep)
	return rep
}

// TestShadowReplay: a history built with a known clock and a known nightly run, replayed
// under a stricter and a looser auto-promotion policy, gives exactly the expected differences;
// the live policy gives none; nothing is written.
func TestShadowReplay(t *testing.T) {
	clk := newClock(pfNightAt.Add(-20 * 24 * time.Hour))
	l := startLedger(t, withClock(clk.Now))
	cand := func(content string, confidence float64, reinforce int) domain.Memory {
		m := l.mem(map[string]any{"memory_type": "knowledge", "content": content, "status": "candidate", "confidence": confidence, "project": "p"})
		for range reinforce {
			clk.Advance(time.Minute)
			l.act("POST", "/memory/"+m.ID+"/reinforce", nil)
		}
		return m
	}
	a := cand("three references, 0.75", 0.6, 3) // live: promoted; refs 4: not
	b := cand("two references, 0.65", 0.55, 2)  // live: not; refs 2 and 0.6: promoted
	c := cand("never reinforced", 0.9, 0)       // expired by every policy
	d := cand("one reference, 0.95", 0.9, 1)    // promoted by none
	clk.Set(pfNightAt)
	run := pfRunNightly(t, l, map[string]any{"night": pfNight})
	require.Equal(t, pfAllSteps(domain.StepOK), pfStepStatuses(run.Steps))
	clk.Advance(time.Hour)
	l.act("POST", "/memory/"+b.ID+"/reject", nil, "X-Actor", "reviewer")
	last := l.lastSeq()

	live := l.shadow(map[string]any{})
	require.Equal(t, 3, live.AutoPromoteRefs)
	require.Empty(t, live.Differences, "the live policy's replay is the history")
	require.Zero(t, live.Refused)
	require.Len(t, live.Runs, 1)
	require.Equal(t, []string{a.ID}, live.Runs[0].Promoted)
	require.Equal(t, live.Runs[0].Promoted, live.Runs[0].ShadowPromoted)
	require.Equal(t, []string{c.ID}, live.Runs[0].Expired)
	require.Equal(t, live.Runs[0].Expired, live.Runs[0].ShadowExpired)
	require.Equal(t, live.Actual, live.Shadow)
	require.Equal(t, last, live.AtSeq)

	strict := l.shadow(map[string]any{"auto_promote_refs": 4, "max_candidates": 1})
	require.Equal(t, []jobs.ShadowDifference{{MemoryID: a.ID, MemoryType: domain.TypeKnowledge, Project: "p",
		Actual: domain.StatusActive, Shadow: domain.StatusCandidate, ActualSince: pfNightAt, ShadowSince: a.CreatedAt}}, strict.Differences)
	require.Empty(t, strict.Runs[0].ShadowPromoted)
	require.Equal(t, []string{c.ID}, strict.Runs[0].ShadowExpired)
	require.Empty(t, strict.Runs[0].Alerts, "the live rules raised nothing")
	require.Equal(t, []string{"Candidate queue too long"}, strict.Runs[0].ShadowAlerts, "a, b and d wait, more than 1")
	require.Equal(t, []jobs.ShadowAlert{{Seq: strict.Runs[0].Seq, Night: pfNight, Title: "Candidate queue too long", Fired: false, WouldFire: true}},
		strict.Alerts, "the alert that would have fired")
	require.Equal(t, jobs.ShadowDifferenceCounts{ByType: map[domain.MemoryType]int{domain.TypeKnowledge: 1},
		ByProject: map[string]int{"p": 1}, ByChange: map[string]int{"active→candidate": 1}}, strict.DifferenceCounts)
	require.Empty(t, live.Alerts)
	require.Empty(t, live.DifferenceCounts.ByType)

	loose := l.shadow(map[string]any{"auto_promote_refs": 2, "auto_promote_confidence": 0.6})
	require.Equal(t, []string{a.ID, b.ID}, loose.Runs[0].ShadowPromoted)
	require.Equal(t, 1, loose.Refused, "the reviewer's rejection of what the policy had promoted")
	require.Len(t, loose.Differences, 1)
	diff := loose.Differences[0]
	require.Equal(t, b.ID, diff.MemoryID)
	require.Equal(t, domain.StatusInvalid, diff.Actual)
	require.Equal(t, domain.StatusActive, diff.Shadow)
	require.Equal(t, pfNightAt, diff.ShadowSince)
	require.Equal(t, pfNightAt.Add(time.Hour), diff.ActualSince)
	require.Equal(t, map[domain.Status]int{domain.StatusActive: 1, domain.StatusInvalid: 2, domain.StatusCandidate: 1}, loose.Actual.ByStatus)
	require.Equal(t, map[domain.Status]int{domain.StatusActive: 2, domain.StatusInvalid: 1, domain.StatusCandidate: 1}, loose.Shadow.ByStatus)
	require.Equal(t, map[string]int{"p": 4}, loose.Shadow.ByProject)
	_ = d

	// A window without the run changes nothing.
	before := l.shadow(map[string]any{"auto_promote_refs": 4, "until": pfNightAt.Add(-time.Hour).Format(time.RFC3339)})
	require.Empty(t, before.Differences)
	require.Empty(t, before.Runs)

	for _, body := range []map[string]any{
		{"auto_promote_refs": 0},
		{"auto_promote_confidence": 1.5},
		{"since": "2026-06-16T00:00:00Z", "until": "2026-06-15T00:00:00Z"},
		{"auto_promote_ref": 2},
	} {
		requireProblem(t, l.do("POST", "/admin/shadow", body), http.StatusBadRequest, "")
	}
	// The command prints the same.
	code, out, errOut := runApp(t, "shadow", "--addr", l.Main.Addr(), "--auto-promote-refs", "4", "--max-candidates", "1")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Contains(t, out, a.ID+" knowledge/p: active since")
	require.Contains(t, out, "would be candidate since")
	require.Contains(t, out, "promoted 1, would promote 0")
	require.Contains(t, out, "1 memories would differ, 0 recorded events refused")
	require.Contains(t, out, `alert "Candidate queue too long"`+" at run "+pfNight)
	require.Contains(t, out, "differences by type: knowledge 1; by project: p 1; by change: active→candidate 1")
	require.NotContains(t, out, "shadow replay", "no progress bar when stdout is not a terminal")
	code, _, errOut = runApp(t, "shadow", "--addr", l.Main.Addr(), "--auto-promote-refs", "0")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "auto_promote_refs")
	require.Equal(t, last, l.lastSeq(), "a shadow replay writes nothing")
}

// TestShadowProgressStream: asked for NDJSON, POST /admin/shadow streams its progress as it
// reads the log (from 0, every 1,000 positions, up to the last), then the report the plain
// request answers; a refused policy is still a 400 problem.
func TestShadowProgressStream(t *testing.T) {
	l := startLedger(t)
	importCandidates(t, l, 2500)
	last := l.lastSeq()
	require.GreaterOrEqual(t, last, uint64(2500))

	body := map[string]any{"auto_promote_refs": 2}
	res := l.do("POST", "/admin/shadow", body, "Accept", "application/x-ndjson")
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	require.Equal(t, "application/x-ndjson", res.Header.Get("Content-Type"))
	lines := bytes.Split(bytes.TrimSpace(res.Body), []byte("\n"))
	type line struct {
		Progress *struct {
			Seq  uint64 `json:"seq"`
			Last uint64 `json:"last"`
		} `json:"progress"`
		Report *jobs.ShadowReport `json:"report"`
	}
	var seqs []uint64
	for _, b := range lines[:len(lines)-1] {
		var l line
		require.NoError(t, json.Unmarshal(b, &l), string(b))
		require.NotNil(t, l.Progress, "every line before the last is progress: %s", b)
		require.Nil(t, l.Report)
		require.Equal(t, last, l.Progress.Last)
		seqs = append(seqs, l.Progress.Seq)
	}
	want := []uint64{0}
	for s := uint64(1000); s < last; s += 1000 {
		want = append(want, s)
	}
	want = append(want, last)
	require.Equal(t, want, seqs, "progress from 0, every 1,000 positions, to the last")
	var end line
	require.NoError(t, json.Unmarshal(lines[len(lines)-1], &end))
	require.NotNil(t, end.Report, "the last line is the report")
	plain := l.shadow(body)
	end.Report.Seconds, plain.Seconds = 0, 0
	require.Equal(t, plain, *end.Report, "the streamed report is the plain one")
	require.Equal(t, last, end.Report.AtSeq)
	require.Equal(t, last, end.Report.Events)

	// Refused before the replay starts: a problem, not a stream.
	requireProblem(t, l.do("POST", "/admin/shadow", map[string]any{"auto_promote_refs": 0}, "Accept", "application/x-ndjson"),
		http.StatusBadRequest, "auto_promote_refs")
	require.Equal(t, last, l.lastSeq(), "a shadow replay writes nothing")
}

// TestShadowStreamClientLeaves: a client that leaves a streamed shadow replay ends it, and the
// server logs that as a client going away, not as a failed request.
func TestShadowStreamClientLeaves(t *testing.T) {
	var logs syncBuffer
	l := startLedger(t, withLog(&logs))
	importCandidates(t, l, 6000)

	b, err := json.Marshal(map[string]any{"auto_promote_refs": 2})
	require.NoError(t, err)
	req, err := http.NewRequest("POST", l.URL+"/admin/shadow", bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	first, err := bufio.NewReader(res.Body).ReadBytes('\n')
	require.NoError(t, err)
	require.Contains(t, string(first), `"progress"`)
	require.NoError(t, res.Body.Close()) // leave mid-replay

	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "shadow replay stopped: the client went away") },
		30*time.Second, 50*time.Millisecond, "the replay noticed the client leave; log:\n%s", logs.String())
	require.NotContains(t, logs.String(), "request failed", "a client leaving is not a failed request")
}

// importCandidates imports n candidate memories, one a second from 2026-11-01, as n events.
func importCandidates(t *testing.T, l *ledger, n int) {
	t.Helper()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]domain.Event, 0, n)
	for i := range n {
		meta := domain.Meta{EventID: commands.NewID(), Actor: "writer", Time: start.Add(time.Duration(i) * time.Second)}
		evs = append(evs, domain.NewEvent(commands.NewID(), meta, domain.MemoryCreated{MemoryType: domain.TypeKnowledge,
			Content: fmt.Sprintf("fact %d", i), Status: domain.StatusCandidate, Confidence: 0.5, DomainTags: []string{}}))
	}
	_, err := l.Main.Ledger.Import(t.Context(), commands.Caller{Actor: "test"}, evs, commands.ImportOptions{})
	require.NoError(t, err)
}
