package atocore

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
)

// statusMap maps AtoCore statuses memledger does not have to the nearest it has: a graduated
// memory was replaced by the entity it became, so it is superseded.
var statusMap = map[string]domain.Status{
	"graduated":  domain.StatusSuperseded,
	"deprecated": domain.StatusSuperseded,
	"archived":   domain.StatusInvalid,
	"deleted":    domain.StatusInvalid,
	"rejected":   domain.StatusInvalid,
	"expired":    domain.StatusInvalid,
	"pending":    domain.StatusCandidate,
	"proposed":   domain.StatusCandidate,
}

// mapStatus returns the memledger status of an AtoCore status and whether it was mapped. A
// status neither memledger nor statusMap knows maps to invalid: not trusted, kept.
func mapStatus(s string) (domain.Status, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if st, err := domain.ParseStatus(s); err == nil {
		return st, false
	}
	if st, ok := statusMap[s]; ok {
		return st, true
	}
	return domain.StatusInvalid, true
}

// knownActions are the audit actions that map to the event of the same verb.
var knownActions = map[string]bool{"created": true, "updated": true, "promoted": true, "rejected": true,
	"invalidated": true, "superseded": true, "reinforced": true, "expired": true}

// auditRow is a memory_audit row read and parsed.
type auditRow struct {
	id, action, actor, note string
	before, after           snapshot
	at                      time.Time
	rowid                   int64
}

// snapshot is an audit row's before or after JSON: some or all of a memory's fields.
type snapshot map[string]json.RawMessage

// snapshotKeys are the keys of a snapshot the importer reads; snapshotKnown the ones it
// knows and leaves alone (the importer takes them from the memories row).
var (
	snapshotKeys  = []string{"memory_type", "content", "project", "status", "confidence", "reference_count", "last_referenced_at", "domain_tags", "valid_until"}
	snapshotKnown = []string{"id", "source_chunk_id", "created_at", "updated_at", "graduated_to_entity_id", "entity_kind", "superseded_by"}
)

// readMemories maps every memory and its audit rows to memory events.
func (b *builder) readMemories(mems, audits []row) {
	byMemory := map[string][]auditRow{}
	known := map[string]bool{}
	for _, r := range mems {
		known[r.str("id")] = true
	}
	actors := map[string]string{}
	for _, r := range audits {
		id, memID := r.str("id"), r.str("memory_id")
		if kind, ok := r.get("entity_kind"); ok && kind != "" && kind != "memory" {
			b.report.skip("memory_audit", id, "audits an entity of kind %q, not a memory", kind)
			continue
		}
		if !known[memID] {
			b.report.skip("memory_audit", id, "memory %s is not in the memories table", memID)
			continue
		}
		ar := auditRow{id: id, action: strings.ToLower(strings.TrimSpace(r.str("action"))), note: r.str("note"), rowid: r.rowid}
		v, ok := r.get("timestamp")
		if !ok || v == "" {
			b.report.skip("memory_audit", id, "has no timestamp, so it cannot be placed in the memory's history")
			continue
		}
		t, err := parseTime(v)
		if err != nil {
			b.report.skip("memory_audit", id, "timestamp %v", err)
			continue
		}
		ar.at = t
		raw := r.str("actor")
		actor, seen := actors[raw]
		if !seen {
			actor = cleanActor(raw)
			actors[raw] = actor
			if actor != raw && raw != "" {
				b.report.adjust("memory_audit", "*", "actor", raw, actor)
			}
		}
		ar.actor = actor
		if ar.before, err = b.parseSnapshot(r.str("before_json")); err != nil {
			b.report.skip("memory_audit", id, "before_json: %v", err)
			continue
		}
		if ar.after, err = b.parseSnapshot(r.str("after_json")); err != nil {
			b.report.skip("memory_audit", id, "after_json: %v", err)
			continue
		}
		if n := len([]rune(ar.note)); n > b.opts.Rules.MaxNoteLength {
			b.report.adjust("memory_audit", id, "note", fmt.Sprintf("%d characters", n), fmt.Sprintf("its first %d", b.opts.Rules.MaxNoteLength-20))
			ar.note = string([]rune(ar.note)[:b.opts.Rules.MaxNoteLength-20])
		}
		byMemory[memID] = append(byMemory[memID], ar)
	}
	for _, r := range mems {
		target, graduatedTo, ok := b.memoryRow(r)
		if !ok {
			if n := len(byMemory[r.str("id")]); n > 0 {
				b.report.skip("memory_audit", "*", "%d rows of memory %s, which is not imported", n, r.str("id"))
			}
			continue
		}
		rows := byMemory[target.ID]
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].at.Before(rows[j].at) })
		b.memory(target, r.str("status"), graduatedTo, rows)
	}
}

var actorChars = regexp.MustCompile(`[^A-Za-z0-9._:@/-]+`)

// cleanActor turns an AtoCore actor into one memledger accepts: AtoCore's default (api) for
// none, characters outside letters, digits and . _ : @ / - as dashes, at most 64.
func cleanActor(a string) string {
	a = strings.TrimSpace(a)
	if a == "" {
		return "api"
	}
	if domain.CheckActor(a) == nil {
		return a
	}
	a = strings.TrimLeft(actorChars.ReplaceAllString(a, "-"), "._:@/-")
	if len(a) > 64 {
		a = a[:64]
	}
	if a == "" {
		return "api"
	}
	return a
}

func (b *builder) parseSnapshot(s string) (snapshot, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "null" {
		return snapshot{}, nil
	}
	var snap snapshot
	if err := json.Unmarshal([]byte(s), &snap); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	for k := range snap {
		if !slices.Contains(snapshotKeys, k) && !slices.Contains(snapshotKnown, k) {
			b.report.IgnoredSnapshotKeys[k]++
		}
	}
	return snap, nil
}

// memoryRow reads a memories row as memledger will hold the memory, or reports why it is
// skipped.
func (b *builder) memoryRow(r row) (domain.Memory, string, bool) {
	id := r.str("id")
	m := domain.Memory{ID: id, DomainTags: []string{}}
	skip := func(format string, args ...any) (domain.Memory, string, bool) {
		b.report.skip("memories", id, format, args...)
		return m, "", false
	}
	if err := domain.CheckDocumentID(id); err != nil {
		return skip("id %q cannot name a memory: it must be 1 to 128 characters without spaces, dots, * or >", id)
	}
	t, err := domain.ParseMemoryType(strings.TrimSpace(r.str("memory_type")))
	if err != nil {
		return skip("%v", err)
	}
	m.MemoryType = t
	if m.Content, err = domain.NormalizeContent(r.str("content"), b.opts.Rules.MaxContentLength); err != nil {
		if errors.Is(err, domain.ErrInvalid) && strings.Contains(err.Error(), "maximum") {
			return skip("%v (raise --max-content to import it)", err)
		}
		return skip("%v", err)
	}
	m.Project = b.projectOf("memories", id, r.str("project"))
	status := "active"
	if v, ok := r.get("status"); ok && v != "" {
		status = v
	}
	st, mapped := mapStatus(status)
	m.Status = st
	if mapped {
		b.report.MappedStatuses[status+" → "+string(st)]++
	}
	if m.Confidence, err = b.confidence("memories", id, r); err != nil {
		return skip("%v", err)
	}
	if v, ok := r.get("reference_count"); ok && v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return skip("reference_count %q is not a count", v)
		}
		m.ReferenceCount = n
	}
	if t := b.rowTime("memories", id, "last_referenced_at", r, time.Time{}); !t.IsZero() {
		m.LastReferencedAt = &t
	}
	if t := b.rowTime("memories", id, "valid_until", r, time.Time{}); !t.IsZero() {
		m.ValidUntil = &t
	}
	if v := r.str("domain_tags"); v != "" {
		tags, err := parseTags(json.RawMessage(v))
		if err != nil {
			return skip("domain_tags %q: %v", v, err)
		}
		if m.DomainTags, err = domain.NormalizeTags(tags, b.opts.Rules.MaxTags, b.opts.Rules.MaxTagLength); err != nil {
			return skip("%v", err)
		}
		if !slices.Equal(tags, m.DomainTags) {
			b.report.adjust("memories", id, "domain_tags", v, strings.Join(m.DomainTags, ","))
		}
	}
	m.SourceChunkID = strings.TrimSpace(r.str("source_chunk_id"))
	if err := domain.CheckRef("source_chunk_id", m.SourceChunkID); err != nil {
		return skip("%v", err)
	}
	m.CreatedAt = b.rowTime("memories", id, "created_at", r, time.Time{})
	m.UpdatedAt = b.rowTime("memories", id, "updated_at", r, m.CreatedAt)
	if m.CreatedAt.IsZero() {
		m.CreatedAt = m.UpdatedAt
	}
	if m.CreatedAt.IsZero() {
		return skip("has neither created_at nor updated_at")
	}
	return m, r.str("graduated_to_entity_id"), true
}

// parseTags reads a tag list: a JSON list, or a JSON string holding one (a snapshot of the
// text column).
func parseTags(raw json.RawMessage) ([]string, error) {
	var tags []string
	if err := json.Unmarshal(raw, &tags); err == nil {
		return tags, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if err := json.Unmarshal([]byte(s), &tags); err == nil {
			return tags, nil
		}
	}
	return nil, errors.New("not a JSON list of strings")
}

// overlay returns m with the fields a snapshot holds; values it cannot read are counted and
// left as they are.
func (b *builder) overlay(m domain.Memory, snap snapshot) domain.Memory {
	m.DomainTags = slices.Clone(m.DomainTags)
	bad := func(k string) { b.report.IgnoredSnapshotKeys[k+" (unreadable value)"]++ }
	for _, k := range snapshotKeys {
		raw, ok := snap[k]
		if !ok {
			continue
		}
		var s string
		isNull := string(raw) == "null"
		switch k {
		case "memory_type":
			if json.Unmarshal(raw, &s) != nil {
				bad(k)
			} else if t, err := domain.ParseMemoryType(s); err == nil {
				m.MemoryType = t
			} else {
				bad(k)
			}
		case "content":
			if json.Unmarshal(raw, &s) != nil {
				bad(k)
			} else if c, err := domain.NormalizeContent(s, b.opts.Rules.MaxContentLength); err == nil {
				m.Content = c
			} else {
				bad(k)
			}
		case "project":
			if isNull {
				m.Project = ""
			} else if json.Unmarshal(raw, &s) != nil {
				bad(k)
			} else if p, ok := b.projects.resolve(s); ok {
				m.Project = p
			} else if domain.CheckProjectID("project", s) == nil || s == "" {
				m.Project = s
			} else {
				m.Project = kebab(s)
			}
		case "status":
			if json.Unmarshal(raw, &s) != nil {
				bad(k)
			} else {
				m.Status, _ = mapStatus(s)
			}
		case "confidence":
			var f float64
			if json.Unmarshal(raw, &f) != nil || domain.CheckConfidence(f) != nil {
				bad(k)
			} else {
				m.Confidence = f
			}
		case "reference_count":
			var n int
			if json.Unmarshal(raw, &n) != nil || n < 0 {
				bad(k)
			} else {
				m.ReferenceCount = n
			}
		case "last_referenced_at", "valid_until":
			var t *time.Time
			if !isNull {
				if json.Unmarshal(raw, &s) != nil {
					bad(k)
					continue
				}
				pt, err := parseTime(s)
				if err != nil {
					bad(k)
					continue
				}
				t = &pt
			}
			if k == "valid_until" {
				m.ValidUntil = t
			} else {
				m.LastReferencedAt = t
			}
		case "domain_tags":
			tags, err := parseTags(raw)
			if isNull {
				tags, err = []string{}, nil
			}
			if err != nil {
				bad(k)
				continue
			}
			if n, err := domain.NormalizeTags(tags, b.opts.Rules.MaxTags, b.opts.Rules.MaxTagLength); err == nil {
				m.DomainTags = n
			} else {
				bad(k)
			}
		}
	}
	return m
}

// memory maps one memory: its audit rows in order (or a creation from the row when it has
// none), then a reconciliation when their fold is not the row.
func (b *builder) memory(target domain.Memory, rawStatus, graduatedTo string, rows []auditRow) {
	id := target.ID
	var state domain.Memory
	var evs []domain.Event
	add := func(ev domain.Event) {
		state = domain.ApplyMemory(state, ev)
		evs = append(evs, ev)
	}
	statusNote := func(s domain.Status) string {
		if _, mapped := mapStatus(rawStatus); !mapped || s != target.Status {
			return ""
		}
		n := fmt.Sprintf("AtoCore status %s, recorded as %s", rawStatus, target.Status)
		if graduatedTo != "" {
			n += " (graduated to entity " + graduatedTo + ")"
		}
		return n
	}
	createFrom := func(m domain.Memory, meta domain.Meta) {
		status := m.Status
		if status != domain.StatusCandidate && status != domain.StatusActive {
			// A memory is created candidate or active; the reconciliation after its history
			// gives it its status.
			if strings.HasPrefix(meta.CorrelationID, "atocore/memory_audit/") {
				b.report.RemappedRows["created as "+string(status)+": created active, its status reconciled"]++
			}
			status = domain.StatusActive
		}
		add(domain.NewEvent(id, meta, domain.MemoryCreated{MemoryType: m.MemoryType, Content: m.Content,
			Project: m.Project, Status: status, Confidence: m.Confidence, SourceChunkID: target.SourceChunkID,
			DomainTags: slices.Clone(m.DomainTags), ValidUntil: m.ValidUntil}))
	}
	switch {
	case len(rows) == 0:
		b.report.CreatedWithoutAudit++
		createFrom(target, domain.Meta{EventID: eventID("memories", id, "created"), Actor: Actor,
			Note: "created from the memories row: it has no audit rows", CorrelationID: "atocore/memories/" + id, Time: target.CreatedAt})
	case rows[0].action != "created":
		b.report.SynthesizedCreates++
		at := target.CreatedAt
		if rows[0].at.Before(at) {
			at = rows[0].at
		}
		createFrom(b.overlay(target, rows[0].before), domain.Meta{EventID: eventID("memories", id, "created"), Actor: Actor,
			Note:          "the audit has no created row: created from the memories row and the first audit row's before snapshot",
			CorrelationID: "atocore/memories/" + id, Time: at})
	}
	for _, r := range rows {
		meta := domain.Meta{EventID: eventID("memory_audit", r.id), Actor: r.actor, Note: r.note,
			CorrelationID: "atocore/memory_audit/" + r.id, Time: r.at}
		if !state.Exists() {
			after := b.overlay(target, r.after)
			if n := statusNote(after.Status); n != "" {
				meta.Note = joinNote(n, meta.Note)
			}
			createFrom(after, meta)
			continue
		}
		after := b.overlay(state, r.after)
		after.UpdatedAt = r.at
		ev, how := b.auditEvent(state, after, r, meta)
		if n := statusNote(after.Status); n != "" && after.Status != state.Status {
			ev.Note = joinNote(n, ev.Note)
		}
		if err := b.opts.Rules.CheckImported(state, ev); err != nil {
			p := domain.ReconcileTo(state, after)
			if p == nil {
				b.report.skip("memory_audit", r.id, "%s records no change memledger can hold (%v)", r.action, err)
				continue
			}
			ev = domain.NewEvent(id, meta, *p)
			ev.Note = joinNote(fmt.Sprintf("AtoCore %s, which memledger refuses here (%v): recorded as a reconciliation", r.action, err), ev.Note)
			if err := b.opts.Rules.CheckImported(state, ev); err != nil {
				b.report.skip("memory_audit", r.id, "%s: %v", r.action, err)
				continue
			}
			how = fmt.Sprintf("%s from %s: reconciliation", r.action, state.Status)
		}
		if how != "" {
			b.report.RemappedRows[how]++
		}
		add(ev)
	}
	if p := domain.ReconcileTo(state, target); p != nil {
		at := target.UpdatedAt
		if last := evs[len(evs)-1].Time; last.After(at) {
			at = last
		}
		note := "reconciled with the memories row: " + strings.Join(p.Changed, ", ") + " differed"
		if n := statusNote(target.Status); n != "" && slices.Contains(p.Changed, "status") {
			note = joinNote(note, n)
		}
		add(domain.NewEvent(id, domain.Meta{EventID: eventID("memories", id, "reconciled"), Actor: Actor, Note: note,
			CorrelationID: "atocore/memories/" + id, Time: at}, *p))
		b.report.Reconciled = append(b.report.Reconciled, id)
	}
	b.memories[id] = state
	b.memEvents = append(b.memEvents, evs...)
}

// auditEvent maps an audit row of an existing memory (state) whose after snapshot gives
// after; how says how a row was recorded otherwise than its action.
func (b *builder) auditEvent(state, after domain.Memory, r auditRow, meta domain.Meta) (domain.Event, string) {
	id := state.ID
	action, how := r.action, ""
	if !knownActions[action] || action == "created" {
		switch {
		case action == "created":
			action, how = "updated", "second created row → updated"
		case after.Status != state.Status:
			if a, err := domain.StatusChange(id, state.Status, after.Status); err == nil {
				action = string(a)
			} else {
				action = "updated"
			}
			how = r.action + " → " + action
		default:
			action, how = "updated", r.action+" → updated"
		}
		meta.Note = joinNote("AtoCore action "+r.action, meta.Note)
	}
	var p domain.Payload
	switch action {
	case "promoted":
		p = domain.MemoryPromoted{}
	case "rejected":
		p = domain.MemoryRejected{}
	case "invalidated":
		p = domain.MemoryInvalidated{}
	case "superseded":
		p = domain.MemorySuperseded{}
	case "expired":
		p = domain.MemoryExpired{}
	case "reinforced":
		delta := 0.0
		if _, ok := r.after["confidence"]; ok {
			delta = max(0, after.Confidence-state.Confidence)
		}
		p = domain.MemoryReinforced{Delta: delta}
	default:
		u := domain.MemoryUpdated{}
		if after.MemoryType != state.MemoryType {
			u.Changed, u.MemoryType = append(u.Changed, "memory_type"), after.MemoryType
		}
		if after.Content != state.Content {
			u.Changed, u.Content = append(u.Changed, "content"), after.Content
		}
		if after.Confidence != state.Confidence {
			u.Changed, u.Confidence = append(u.Changed, "confidence"), after.Confidence
		}
		if !slices.Equal(after.DomainTags, state.DomainTags) {
			u.Changed, u.DomainTags = append(u.Changed, "domain_tags"), after.DomainTags
		}
		if !equalTimes(after.ValidUntil, state.ValidUntil) {
			u.Changed, u.ValidUntil = append(u.Changed, "valid_until"), after.ValidUntil
		}
		if after.Status != state.Status {
			u.Changed, u.Status = append(u.Changed, "status"), after.Status
		}
		p = u
	}
	return domain.NewEvent(id, meta, p), how
}

func equalTimes(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func joinNote(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
