package atocore

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
)

// Actor is the actor of the events the importer makes up (creations of memories without an
// audit row, reconciliations, projects, state and documents).
const Actor = "atocore-import"

// registryFile is the project registry AtoCore keeps beside its database.
type registryFile struct {
	Projects []struct {
		ID          string   `json:"id"`
		Aliases     []string `json:"aliases"`
		Description string   `json:"description"`
	} `json:"projects"`
}

var nonKebab = regexp.MustCompile(`[^a-z0-9]+`)

// kebab turns a name into a lowercase kebab-case id ("" when nothing of it is left).
func kebab(name string) string {
	s := strings.Trim(nonKebab.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > 64 {
		s = strings.TrimRight(s[:64], "-")
	}
	return s
}

// projectSet is the projects the import registers and every name that stands for one.
type projectSet struct {
	order []string
	byID  map[string]*importedProject
	// names maps a projects row id, a name, an alias, lowercased, to the canonical id.
	names map[string]string
}

type importedProject struct {
	id, description string
	aliases         []string
	at              time.Time
	source          string // "projects/<row id>" or "registry"
}

// resolve returns the canonical project id name stands for, or false.
func (ps *projectSet) resolve(name string) (string, bool) {
	id, ok := ps.names[strings.ToLower(strings.TrimSpace(name))]
	return id, ok
}

// owner says whether a name (id or alias) is taken by another project than id.
func (ps *projectSet) taken(name, id string) (string, bool) {
	for _, pid := range ps.order {
		if pid == id {
			continue
		}
		p := ps.byID[pid]
		if p.id == name || slices.Contains(p.aliases, name) {
			return pid, true
		}
	}
	return "", false
}

// readProjects maps the projects table and the registry file to the projects to register.
func (b *builder) readProjects(rows []row, registry string) error {
	ps := &projectSet{byID: map[string]*importedProject{}, names: map[string]string{}}
	b.projects = ps
	for _, r := range rows {
		rid := r.str("id")
		name := r.str("name")
		if name == "" {
			name = rid
		}
		// The name is the project's id everywhere else (memories, the registry); a name
		// that is not an id becomes its kebab-case form.
		id := name
		if domain.CheckProjectID("id", id) != nil {
			id = kebab(name)
			b.report.adjust("projects", rid, "name", name, id)
		}
		if id == "" {
			b.report.skip("projects", rid, "name %q gives no project id", name)
			continue
		}
		if id == domain.SystemProject {
			ps.names[strings.ToLower(rid)] = id
			b.report.skip("projects", rid, "%q is memledger's built-in system project; it needs no registration", id)
			continue
		}
		at := b.rowTime("projects", rid, "created_at", r, time.Time{})
		if p, ok := ps.byID[id]; ok {
			b.report.skip("projects", rid, "names the same project %s as row %s", id, strings.TrimPrefix(p.source, "projects/"))
			ps.names[strings.ToLower(rid)] = id
			continue
		}
		ps.order = append(ps.order, id)
		ps.byID[id] = &importedProject{id: id, description: strings.TrimSpace(r.str("description")), at: at, source: "projects/" + rid}
		for _, n := range []string{rid, name, id} {
			ps.names[strings.ToLower(n)] = id
		}
	}
	if registry != "" {
		if err := b.readRegistry(registry); err != nil {
			return err
		}
	}
	for _, id := range ps.order {
		p := ps.byID[id]
		if p.at.IsZero() {
			p.at = b.registryTime
			if p.at.IsZero() {
				p.at = b.now
			}
		}
		b.emit(domain.NewEvent(id, domain.Meta{EventID: eventID("project", id), Actor: Actor,
			Note: "imported from AtoCore (" + p.source + ")", CorrelationID: "atocore/" + p.source, Time: p.at},
			domain.ProjectRegistered{Aliases: p.aliases, Description: p.description}))
	}
	return nil
}

func (b *builder) readRegistry(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("project registry: %w", err)
	}
	var reg registryFile
	if err := json.Unmarshal(data, &reg); err != nil {
		return fmt.Errorf("project registry %s: not the registry's JSON ({\"projects\": [{\"id\", \"aliases\", \"description\"}]}): %w", path, err)
	}
	if st, err := os.Stat(path); err == nil {
		b.registryTime = st.ModTime().UTC()
	}
	ps := b.projects
	b.report.RowsRead["registry"] = len(reg.Projects)
	// First every project, so that an alias is checked against every id.
	type entry struct {
		id      string
		aliases []string
	}
	var entries []entry
	for i, rp := range reg.Projects {
		ref := rp.ID
		if ref == "" {
			ref = "#" + strconv.Itoa(i)
		}
		id, ok := ps.resolve(rp.ID)
		if !ok {
			id = rp.ID
			if domain.CheckProjectID("id", id) != nil {
				id = kebab(rp.ID)
				b.report.adjust("registry", ref, "id", rp.ID, id)
			}
			if id == "" || id == domain.SystemProject {
				b.report.skip("registry", ref, "id %q gives no project id of its own", rp.ID)
				continue
			}
			if _, dup := ps.byID[id]; !dup {
				ps.order = append(ps.order, id)
				ps.byID[id] = &importedProject{id: id, source: "registry"}
			}
			ps.names[strings.ToLower(rp.ID)], ps.names[id] = id, id
		}
		if d := strings.TrimSpace(rp.Description); d != "" {
			ps.byID[id].description = d
		}
		entries = append(entries, entry{id, rp.Aliases})
	}
	for _, e := range entries {
		p := ps.byID[e.id]
		for _, a := range e.aliases {
			alias := strings.ToLower(strings.TrimSpace(a))
			if domain.CheckProjectID("aliases", alias) != nil {
				if k := kebab(alias); k != "" {
					b.report.adjust("registry", e.id, "alias", a, k)
					alias = k
				}
			}
			switch other, taken := ps.taken(alias, e.id); {
			case alias == "" || alias == e.id || slices.Contains(p.aliases, alias):
				continue
			case alias == domain.SystemProject:
				b.report.skip("registry", e.id, "alias %q is memledger's system project", a)
			case taken:
				b.report.skip("registry", e.id, "alias %q is already the id or an alias of project %s", a, other)
			default:
				p.aliases = append(p.aliases, alias)
				ps.names[alias] = e.id
			}
		}
		sort.Strings(p.aliases)
	}
	return nil
}

// projectOf returns the canonical project a memory's or state entry's project names: a
// registered one (by row id, name or alias), else the name itself when it is a project id,
// else its kebab-case form (reported).
func (b *builder) projectOf(table, id, name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return ""
	}
	if p, ok := b.projects.resolve(name); ok {
		if p != name {
			b.resolvedAliases++
		}
		return p
	}
	if domain.CheckProjectID("project", name) == nil {
		return name
	}
	k := kebab(name)
	b.report.adjust(table, id, "project", name, k)
	return k
}

// stateRow is a project_state row read and checked.
type stateRow struct {
	id, project, category, key, value, source, status string
	confidence                                        float64
	created, updated                                  time.Time
}

// readState maps project_state rows to state events: an active entry is set at its
// updated_at; a superseded or invalid one is set at its created_at and, when no later row of
// the same key replaces it, invalidated at its updated_at.
func (b *builder) readState(rows []row) error {
	byKey := map[[3]string][]stateRow{}
	var keys [][3]string
	for _, r := range rows {
		id := r.str("id")
		project := r.str("project_id")
		if p, ok := b.projects.resolve(project); ok {
			project = p
		} else {
			project = b.projectOf("project_state", id, project)
		}
		s := stateRow{id: id, project: project, category: r.str("category"), key: r.str("key"),
			value: r.str("value"), source: r.str("source"), status: "active"}
		if v, ok := r.get("status"); ok && v != "" {
			s.status = v
		}
		if s.project == domain.SystemProject && (s.category == domain.CategoryAlert || s.category == domain.CategoryStatus) {
			b.report.skip("project_state", id, "%s/%s/%s is derived in memledger (from its alerts and its integrity runs), never written; the import's own integrity run replaces it",
				s.project, s.category, s.key)
			continue
		}
		if err := domain.CheckStateKey(s.project, s.category, s.key); err != nil {
			b.report.skip("project_state", id, "%v", err)
			continue
		}
		if strings.TrimSpace(s.value) == "" {
			b.report.skip("project_state", id, "value is empty")
			continue
		}
		var err error
		if s.confidence, err = b.confidence("project_state", id, r); err != nil {
			b.report.skip("project_state", id, "%v", err)
			continue
		}
		s.created = b.rowTime("project_state", id, "created_at", r, time.Time{})
		s.updated = b.rowTime("project_state", id, "updated_at", r, s.created)
		if s.created.IsZero() {
			s.created = s.updated
		}
		if s.created.IsZero() {
			b.report.skip("project_state", id, "has neither created_at nor updated_at")
			continue
		}
		switch s.status {
		case domain.StateActive, domain.StateInvalid:
		case "superseded":
			b.report.MappedStatuses["project_state superseded → invalid (when no later row replaces it)"]++
		default:
			b.report.MappedStatuses["project_state "+s.status+" → invalid"]++
			s.status = domain.StateInvalid
		}
		k := [3]string{s.project, s.category, s.key}
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], s)
	}
	for _, k := range keys {
		rs := byKey[k]
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].created.Before(rs[j].created) })
		for i, s := range rs {
			meta := func(which string, at time.Time, note string) domain.Meta {
				return domain.Meta{EventID: eventID("project_state", s.id, which), Actor: Actor, Note: note,
					CorrelationID: "atocore/project_state/" + s.id, Time: at}
			}
			set := domain.StateSet{Category: s.category, Key: s.key, Value: s.value, Source: s.source, Confidence: s.confidence}
			if s.status == domain.StateActive {
				b.emit(domain.NewEvent(s.project, meta("set", s.updated, "imported from AtoCore"), set))
				continue
			}
			b.emit(domain.NewEvent(s.project, meta("set", s.created, "imported from AtoCore"), set))
			if i == len(rs)-1 {
				b.emit(domain.NewEvent(s.project, meta("invalidated", s.updated, "AtoCore status "+s.status),
					domain.StateInvalidated{Category: s.category, Key: s.key}))
			}
		}
	}
	return nil
}

// confidence reads a row's confidence (1 when absent), refusing a value outside [0, 1].
func (b *builder) confidence(table, id string, r row) (float64, error) {
	v, ok := r.get("confidence")
	if !ok || strings.TrimSpace(v) == "" {
		return domain.DefaultConfidence, nil
	}
	c, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0, fmt.Errorf("confidence %q is not a number", v)
	}
	if err := domain.CheckConfidence(c); err != nil {
		return 0, err
	}
	return c, nil
}
