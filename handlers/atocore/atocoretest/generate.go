package atocoretest

import (
	"encoding/json"
	"fmt"
	"time"
)

// Generate builds at path an AtoCore database of n memories, each with a history of three
// audit rows (created as a candidate, reinforced, promoted), spread over a year: the shape of
// the database the import rate is measured on (n = 100,000: 300,000 audit rows). One memory in
// ten was reinforced once more than its audit says (a lost row), so that its import needs a
// reconciliation.
func Generate(path string, n int) error {
	db, err := Create(path)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	mem, err := tx.Prepare(`INSERT INTO memories (id, memory_type, content, project, confidence, status, created_at,
		updated_at, last_referenced_at, reference_count, domain_tags) VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	audit, err := tx.Prepare(`INSERT INTO memory_audit (id, memory_id, action, actor, before_json, after_json, note, timestamp)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(`INSERT INTO projects (id, name, description) VALUES ('p1', 'p01-bench', 'generated')`); err != nil {
		return err
	}
	types := []string{"identity", "preference", "project", "episodic", "knowledge", "adaptation"}
	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	step := 365 * 24 * time.Hour / time.Duration(n)
	stamp := func(t time.Time) string { return t.Format("2006-01-02 15:04:05") }
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	for i := range n {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		created := start.Add(time.Duration(i) * step)
		reinforced, promoted := created.Add(time.Hour), created.Add(2*time.Hour)
		typ, content := types[i%len(types)], fmt.Sprintf("Generated fact number %d about the bench", i)
		project := ""
		if i%2 == 0 {
			project = "p01-bench"
		}
		tags := `["bench"]`
		refs := 1
		if i%10 == 9 {
			refs = 2
		}
		if _, err := mem.Exec(id, typ, content, project, 0.65, stamp(created), stamp(promoted), stamp(reinforced), refs, tags); err != nil {
			return err
		}
		rows := []struct {
			action, actor string
			before, after any
			at            time.Time
		}{
			{"created", "extractor-v2", nil, map[string]any{"memory_type": typ, "content": content, "project": project,
				"status": "candidate", "confidence": 0.6, "domain_tags": []string{"bench"}}, created},
			{"reinforced", "reinforcement", map[string]any{"confidence": 0.6}, map[string]any{"confidence": 0.65, "reference_count": 1}, reinforced},
			{"promoted", "human-triage", map[string]any{"status": "candidate"}, map[string]any{"status": "active"}, promoted},
		}
		for j, r := range rows {
			var before any
			if r.before != nil {
				before = js(r.before)
			}
			if _, err := audit.Exec(fmt.Sprintf("a-%d-%d", i, j), id, r.action, r.actor, before, js(r.after), "", stamp(r.at)); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}
