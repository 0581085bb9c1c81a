package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"unicode/utf8"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
)

// recentAuditSize is how many mutations the dashboard shows.
const recentAuditSize = 10

// Dashboard is the ledger's health at a glance.
type Dashboard struct {
	Memories     projections.MemoryCounts          `json:"memories"`
	Reinforced   int                               `json:"reinforced"`
	ProjectState projections.StateCounts           `json:"project_state"`
	Integrity    domain.IntegrityReport            `json:"integrity"`
	Alerts       map[domain.Severity]*domain.Alert `json:"alerts"`
	RecentAudit  []RecentMutation                  `json:"recent_audit"`
	Ledger       LedgerStatus                      `json:"ledger"`
}

// RecentMutation is an audit entry as the dashboard lists it.
type RecentMutation struct {
	Seq       uint64        `json:"seq"`
	MemoryID  string        `json:"memory_id"`
	Action    domain.Action `json:"action"`
	Actor     string        `json:"actor"`
	Note      string        `json:"note"`
	Timestamp string        `json:"timestamp"`
	Preview   string        `json:"preview"`
}

// ProjectionStatus is how far a projection is behind the log.
type ProjectionStatus struct {
	Checkpoint uint64 `json:"checkpoint"`
	Lag        uint64 `json:"lag"`
}

// LedgerStatus is the log's position, each projection's, and the last nightly run.
type LedgerStatus struct {
	LastSeq     uint64                      `json:"last_seq"`
	Projections map[string]ProjectionStatus `json:"projections"`
	LastNightly json.RawMessage             `json:"last_nightly"`
}

// previewLength is how many characters of a memory's content a preview keeps.
const previewLength = 80

func preview(s string) string {
	if utf8.RuneCountInString(s) <= previewLength {
		return s
	}
	return string([]rune(s)[:previewLength-1]) + "…"
}

// Dashboard gathers the dashboard's figures from the projections.
func (s *Server) Dashboard(ctx context.Context) (Dashboard, error) {
	var d Dashboard
	var errs []error
	var err error
	d.Memories, err = s.DB.MemoryCounts()
	errs = append(errs, err)
	d.Reinforced = d.Memories.Reinforced
	d.ProjectState, err = s.DB.StateCounts()
	errs = append(errs, err)
	d.Integrity, err = s.DB.IntegrityReport()
	errs = append(errs, err)
	last, err := s.DB.LastAlerts()
	errs = append(errs, err)
	d.Alerts = map[domain.Severity]*domain.Alert{}
	for _, sev := range domain.Severities {
		d.Alerts[sev] = nil
		if data := last[sev]; data != nil {
			var a domain.Alert
			errs = append(errs, json.Unmarshal(data, &a))
			d.Alerts[sev] = &a
		}
	}
	entries, err := s.DB.RecentAudit(projections.AuditFilter{Limit: recentAuditSize})
	errs = append(errs, err)
	d.RecentAudit = []RecentMutation{}
	for _, data := range entries {
		var e projections.AuditEntry
		if err := json.Unmarshal(data, &e); err != nil {
			errs = append(errs, err)
			continue
		}
		snap := e.After
		if string(snap) == "null" {
			snap = e.Before
		}
		var m domain.Memory
		json.Unmarshal(snap, &m)
		d.RecentAudit = append(d.RecentAudit, RecentMutation{Seq: e.Seq, MemoryID: e.MemoryID, Action: e.Action,
			Actor: e.Actor, Note: e.Note, Timestamp: e.Timestamp.Format("2006-01-02T15:04:05Z07:00"), Preview: preview(m.Content)})
	}
	d.Ledger.LastSeq, err = s.Store.LastSeq(ctx)
	errs = append(errs, err)
	cps, err := s.DB.Checkpoints()
	errs = append(errs, err)
	d.Ledger.Projections = map[string]ProjectionStatus{}
	for name, cp := range cps {
		d.Ledger.Projections[name] = ProjectionStatus{Checkpoint: cp, Lag: d.Ledger.LastSeq - min(cp, d.Ledger.LastSeq)}
	}
	runs, err := s.DB.NightlyRuns(1)
	errs = append(errs, err)
	d.Ledger.LastNightly = json.RawMessage("null")
	if len(runs) > 0 {
		d.Ledger.LastNightly = runs[0]
	}
	return d, errors.Join(errs...)
}

func (s *Server) getDashboard(w http.ResponseWriter, r *http.Request) {
	d, err := s.Dashboard(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}
