package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

// revertFields are the form fields of the revert page that name the slice, in display order.
var revertFields = []string{"actor", "principal", "actions", "since", "until", "memory_ids", "project", "correlation_id", "nightly_run"}

// revertPageQuery is the query the revert page takes: the slice's fields and the options.
var revertPageQuery = append(slices.Clip(revertFields), "include_conflicts", "note")

// revertPage is what the revert page shows: the form, and the plan once the form names a slice.
type revertPage struct {
	Form             url.Values
	Fields           []string
	IncludeConflicts bool
	Note             string
	Plan             *ledger.RevertPlan
	// Rows are the plan's memories with their states decoded.
	Rows []revertRow
}

// revertRow is a memory of a plan, as the page shows it.
type revertRow struct {
	ledger.RevertItem
	Now, Then domain.Memory
}

// setPlan sets the plan the page shows.
func (p *revertPage) setPlan(plan ledger.RevertPlan) error {
	p.Plan = &plan
	for _, it := range plan.Memories {
		row := revertRow{RevertItem: it}
		if err := json.Unmarshal(it.Current, &row.Now); err != nil {
			return err
		}
		if err := json.Unmarshal(it.RevertTo, &row.Then); err != nil {
			return err
		}
		p.Rows = append(p.Rows, row)
	}
	return nil
}

// revertForm reads the slice a revert page's form names.
func revertForm(v url.Values) (ledger.RevertFilter, bool, error) {
	f := ledger.RevertFilter{Actor: strings.TrimSpace(v.Get("actor")), Principal: strings.TrimSpace(v.Get("principal")),
		Project: strings.TrimSpace(v.Get("project")), CorrelationID: strings.TrimSpace(v.Get("correlation_id")),
		NightlyRun: strings.TrimSpace(v.Get("nightly_run"))}
	for _, a := range splitList(v.Get("actions")) {
		f.Actions = append(f.Actions, domain.Action(a))
	}
	f.MemoryIDs = splitList(v.Get("memory_ids"))
	for _, t := range []struct {
		field string
		dst   **time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		s := strings.TrimSpace(v.Get(t.field))
		if s == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return f, false, domain.Invalid(t.field, "%q is not an RFC 3339 time (like 2026-11-30T00:00:00Z)", s)
		}
		*t.dst = &at
	}
	named := false
	for _, k := range revertFields {
		named = named || strings.TrimSpace(v.Get(k)) != ""
	}
	return f, named, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// uiRevert is the revert page: a form that names a slice of the history and, once it names
// one, the plan of its revert as a table, with a confirmation that applies it.
func (s *Server) uiRevert(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	data := revertPage{Form: v, Fields: revertFields, IncludeConflicts: v.Get("include_conflicts") == "on", Note: v.Get("note")}
	f, named, err := revertForm(v)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	if named {
		plan, err := s.Ledger.Revert(r.Context(), caller(r, ActorAdmin), data.Note, f,
			ledger.RevertOptions{IncludeConflicts: data.IncludeConflicts})
		if err != nil {
			s.uiFail(w, r, err)
			return
		}
		if err := data.setPlan(plan); err != nil {
			s.uiFail(w, r, err)
			return
		}
	}
	s.render(w, r, "revert", page{Title: "Revert", Nav: "revert", Data: data})
}

// uiRevertApply applies the revert a plan page's confirmation posts, and shows what it did.
func (s *Server) uiRevertApply(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		s.uiFail(w, r, domain.Invalid("body", "unreadable form: %v", err))
		return
	}
	v := r.PostForm
	if v.Get("confirm") != "yes" {
		s.uiFail(w, r, domain.Invalid("confirm", "tick the confirmation to apply the revert"))
		return
	}
	data := revertPage{Form: v, Fields: revertFields, IncludeConflicts: v.Get("include_conflicts") == "on", Note: v.Get("note")}
	f, _, err := revertForm(v)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	plan, err := s.Ledger.Revert(r.Context(), caller(r, ActorAdmin), strings.TrimSpace(data.Note), f,
		ledger.RevertOptions{Apply: true, IncludeConflicts: data.IncludeConflicts})
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	if err := data.setPlan(plan); err != nil {
		s.uiFail(w, r, err)
		return
	}
	p := page{Title: "Revert", Nav: "revert", Data: data, Flash: fmt.Sprintf("%d %s reverted", plan.Counts.Reverted, plural(plan.Counts.Reverted, "memory", "memories"))}
	s.render(w, r, "revert", p)
}
