package domain

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// SystemProject is the project of the ledger's own state entries (atocore/alert/...,
// atocore/status/...). It is always known and never needs registering.
const SystemProject = "atocore"

// maxAliases and maxDescription bound a project.
const (
	maxAliases     = 20
	maxDescription = 2000
)

// Project is a registered project.
type Project struct {
	ID          string   `json:"id"`
	Aliases     []string `json:"aliases"`
	Description string   `json:"description"`
}

// Registry is every registered project by id: the state project commands are decided on.
type Registry map[string]Project

// Resolve returns the canonical id a project name (an id or an alias) stands for; a name no
// project knows stands for itself.
func (r Registry) Resolve(name string) string {
	if _, ok := r[name]; ok {
		return name
	}
	for _, p := range r {
		if slices.Contains(p.Aliases, name) {
			return p.ID
		}
	}
	return name
}

// owner returns the project other than except whose id or alias is name.
func (r Registry) owner(name, except string) (string, bool) {
	for _, p := range r {
		if p.ID == except {
			continue
		}
		if p.ID == name || slices.Contains(p.Aliases, name) {
			return p.ID, true
		}
	}
	return "", false
}

// ProjectRegistered records a new project.
type ProjectRegistered struct {
	Aliases     []string `json:"aliases"`
	Description string   `json:"description"`
}

// ProjectUpdated records new aliases and description of a project.
type ProjectUpdated struct {
	Aliases     []string `json:"aliases"`
	Description string   `json:"description"`
}

// Project event type names.
const (
	EventProjectRegistered = "project.registered"
	EventProjectUpdated    = "project.updated"
)

// EventType implements Payload.
func (ProjectRegistered) EventType() string { return EventProjectRegistered }

// EventType implements Payload.
func (ProjectUpdated) EventType() string { return EventProjectUpdated }

// RegisterProject registers a project.
type RegisterProject struct {
	ID          string
	Aliases     []string
	Description string
}

// UpdateProject replaces the aliases and/or the description of a project.
type UpdateProject struct {
	ID          string
	Aliases     *[]string
	Description *string
}

// DecideRegisterProject checks c against the registry.
func DecideRegisterProject(reg Registry, c RegisterProject, meta Meta) (Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return Event{}, err
	}
	id := strings.TrimSpace(c.ID)
	if err := CheckProjectID("id", id); err != nil {
		return Event{}, err
	}
	if id == SystemProject {
		return Event{}, Invalid("id", "%q is the ledger's own system project", id)
	}
	if _, ok := reg[id]; ok {
		return Event{}, fmt.Errorf("project %s is already registered: %w", id, ErrConflict)
	}
	if other, ok := reg.owner(id, ""); ok {
		return Event{}, fmt.Errorf("%q is an alias of project %s: %w", id, other, ErrConflict)
	}
	aliases, err := checkAliases(reg, id, c.Aliases)
	if err != nil {
		return Event{}, err
	}
	desc, err := checkDescription(c.Description)
	if err != nil {
		return Event{}, err
	}
	return NewEvent(id, meta, ProjectRegistered{Aliases: aliases, Description: desc}), nil
}

// DecideUpdateProject checks c against the registry; no event when nothing changes.
func DecideUpdateProject(reg Registry, c UpdateProject, meta Meta) ([]Event, error) {
	if err := CheckActor(meta.Actor); err != nil {
		return nil, err
	}
	p, ok := reg[c.ID]
	if !ok {
		return nil, fmt.Errorf("project %s: %w", c.ID, ErrNotFound)
	}
	if c.Aliases == nil && c.Description == nil {
		return nil, Invalid("body", "names nothing to update (aliases, description)")
	}
	u := ProjectUpdated{Aliases: p.Aliases, Description: p.Description}
	var err error
	if c.Aliases != nil {
		if u.Aliases, err = checkAliases(reg, c.ID, *c.Aliases); err != nil {
			return nil, err
		}
	}
	if c.Description != nil {
		if u.Description, err = checkDescription(*c.Description); err != nil {
			return nil, err
		}
	}
	if slices.Equal(u.Aliases, p.Aliases) && u.Description == p.Description {
		return nil, nil
	}
	return []Event{NewEvent(c.ID, meta, u)}, nil
}

func checkAliases(reg Registry, id string, aliases []string) ([]string, error) {
	out := []string{}
	for _, a := range aliases {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" || a == id || slices.Contains(out, a) {
			continue
		}
		if err := CheckProjectID("aliases", a); err != nil {
			return nil, err
		}
		if a == SystemProject {
			return nil, Invalid("aliases", "%q is the ledger's own system project", a)
		}
		if other, ok := reg.owner(a, id); ok {
			return nil, fmt.Errorf("alias %q is already the id or an alias of project %s: %w", a, other, ErrConflict)
		}
		out = append(out, a)
	}
	if len(out) > maxAliases {
		return nil, Invalid("aliases", "has %d aliases; the maximum is %d", len(out), maxAliases)
	}
	return out, nil
}

func checkDescription(d string) (string, error) {
	d = strings.TrimSpace(d)
	if n := utf8.RuneCountInString(d); n > maxDescription {
		return "", Invalid("description", "is %d characters long; the maximum is %d", n, maxDescription)
	}
	return d, nil
}

// ApplyProject folds a project event into the registry.
func ApplyProject(reg Registry, ev Event) {
	switch p := ev.Data.(type) {
	case ProjectRegistered:
		reg[ev.AggregateID] = Project{ID: ev.AggregateID, Aliases: slices.Clone(p.Aliases), Description: p.Description}
	case ProjectUpdated:
		reg[ev.AggregateID] = Project{ID: ev.AggregateID, Aliases: slices.Clone(p.Aliases), Description: p.Description}
	}
}
