package domain_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// pfMeta is the metadata of the commands of the project, state and document tests.
var pfMeta = domain.Meta{EventID: "ev-1", Actor: "tester", Note: "why", Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}

// pfRequireField checks err is a validation error about field, and nothing else.
func pfRequireField(t *testing.T, err error, field string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, domain.ErrInvalid)
	require.False(t, errors.Is(err, domain.ErrConflict) || errors.Is(err, domain.ErrNotFound), "error: %v", err)
	var fe *domain.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, field, fe.Field, "error: %v", err)
	require.NotEmpty(t, fe.Reason)
}

// pfRegistry folds the registration of each project into a registry.
func pfRegistry(t *testing.T, projects ...domain.RegisterProject) domain.Registry {
	t.Helper()
	reg := domain.Registry{}
	for _, p := range projects {
		ev, err := domain.DecideRegisterProject(reg, p, pfMeta)
		require.NoError(t, err)
		domain.ApplyProject(reg, ev)
	}
	return reg
}

func TestRegistryResolve(t *testing.T) {
	reg := pfRegistry(t,
		domain.RegisterProject{ID: "memledger", Aliases: []string{"ml", "ledger"}},
		domain.RegisterProject{ID: "atlas"})
	for name, want := range map[string]string{
		"memledger": "memledger", "ml": "memledger", "ledger": "memledger",
		"atlas": "atlas", "unknown": "unknown", "": "",
	} {
		require.Equal(t, want, reg.Resolve(name), "Resolve(%q)", name)
	}
}

func TestDecideRegisterProject(t *testing.T) {
	ev, err := domain.DecideRegisterProject(domain.Registry{}, domain.RegisterProject{
		ID: " memledger ", Aliases: []string{" ML ", "ml", "memledger", "", "Ledger-2"}, Description: "  the ledger \n",
	}, pfMeta)
	require.NoError(t, err)
	require.Equal(t, domain.EventProjectRegistered, ev.Type)
	require.Equal(t, "project", ev.Kind())
	require.Equal(t, "memledger", ev.AggregateID, "the id is trimmed")
	require.Equal(t, pfMeta.Actor, ev.Actor)
	require.Equal(t, pfMeta.EventID, ev.ID)
	require.Equal(t, domain.ProjectRegistered{Aliases: []string{"ml", "ledger-2"}, Description: "the ledger"}, ev.Data,
		"aliases lowercased, trimmed and de-duplicated; empty ones and the id itself dropped")

	ev, err = domain.DecideRegisterProject(domain.Registry{}, domain.RegisterProject{ID: "bare"}, pfMeta)
	require.NoError(t, err)
	require.Equal(t, domain.ProjectRegistered{Aliases: []string{}}, ev.Data, "no aliases is an empty list, never null")
}

func TestDecideRegisterProjectRefusals(t *testing.T) {
	reg := pfRegistry(t, domain.RegisterProject{ID: "alpha", Aliases: []string{"a1"}})
	tooMany := make([]string, 21)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("alias-%d", i)
	}
	for _, c := range []struct {
		cmd   domain.RegisterProject
		field string
	}{
		{domain.RegisterProject{ID: ""}, "id"},
		{domain.RegisterProject{ID: "Upper"}, "id"},
		{domain.RegisterProject{ID: "under_score"}, "id"},
		{domain.RegisterProject{ID: "-lead"}, "id"},
		{domain.RegisterProject{ID: "double--dash"}, "id"},
		{domain.RegisterProject{ID: strings.Repeat("a", 65)}, "id"},
		{domain.RegisterProject{ID: domain.SystemProject}, "id"},
		{domain.RegisterProject{ID: "beta", Aliases: []string{"has space"}}, "aliases"},
		{domain.RegisterProject{ID: "beta", Aliases: []string{"ATOCORE"}}, "aliases"},
		{domain.RegisterProject{ID: "beta", Aliases: tooMany}, "aliases"},
		{domain.RegisterProject{ID: "beta", Description: strings.Repeat("é", 2001)}, "description"},
	} {
		_, err := domain.DecideRegisterProject(reg, c.cmd, pfMeta)
		pfRequireField(t, err, c.field)
	}
	ok := domain.RegisterProject{ID: "beta", Aliases: tooMany[:20], Description: strings.Repeat("é", 2000)}
	_, err := domain.DecideRegisterProject(reg, ok, pfMeta)
	require.NoError(t, err, "20 aliases and 2000 characters are the limits")

	bad := pfMeta
	bad.Actor = ""
	_, err = domain.DecideRegisterProject(reg, domain.RegisterProject{ID: "beta"}, bad)
	pfRequireField(t, err, "actor")

	for _, cmd := range []domain.RegisterProject{
		{ID: "alpha"},                              // the id is taken
		{ID: "a1"},                                 // the id is another project's alias
		{ID: "beta", Aliases: []string{"alpha"}},   // an alias is another project's id
		{ID: "beta", Aliases: []string{"A1 "}},     // an alias is another project's alias
		{ID: "beta", Aliases: []string{"b", "a1"}}, // ... anywhere in the list
	} {
		_, err := domain.DecideRegisterProject(reg, cmd, pfMeta)
		require.ErrorIs(t, err, domain.ErrConflict, "%+v", cmd)
		require.NotErrorIs(t, err, domain.ErrInvalid)
	}
}

func TestDecideUpdateProject(t *testing.T) {
	reg := pfRegistry(t,
		domain.RegisterProject{ID: "alpha", Aliases: []string{"a1", "a2"}, Description: "first"},
		domain.RegisterProject{ID: "beta", Aliases: []string{"b1"}})
	aliases := func(a ...string) *[]string { return &a }
	desc := func(d string) *string { return &d }

	_, err := domain.DecideUpdateProject(reg, domain.UpdateProject{ID: "nope", Description: desc("x")}, pfMeta)
	require.ErrorIs(t, err, domain.ErrNotFound)
	_, err = domain.DecideUpdateProject(reg, domain.UpdateProject{ID: "alpha"}, pfMeta)
	pfRequireField(t, err, "body")
	_, err = domain.DecideUpdateProject(reg, domain.UpdateProject{ID: "alpha", Aliases: aliases("b1")}, pfMeta)
	require.ErrorIs(t, err, domain.ErrConflict, "an alias of another project")
	_, err = domain.DecideUpdateProject(reg, domain.UpdateProject{ID: "alpha", Aliases: aliases("beta")}, pfMeta)
	require.ErrorIs(t, err, domain.ErrConflict, "another project's id")
	_, err = domain.DecideUpdateProject(reg, domain.UpdateProject{ID: "alpha", Aliases: aliases("not valid")}, pfMeta)
	pfRequireField(t, err, "aliases")
	_, err = domain.DecideUpdateProject(reg, domain.UpdateProject{ID: "alpha", Description: desc(strings.Repeat("x", 2001))}, pfMeta)
	pfRequireField(t, err, "description")

	// Nothing changes: no event.
	evs, err := domain.DecideUpdateProject(reg, domain.UpdateProject{ID: "alpha", Aliases: aliases("A1", "a2", "alpha"), Description: desc(" first ")}, pfMeta)
	require.NoError(t, err)
	require.Empty(t, evs)

	// Aliases only keep the description, and the reverse.
	evs, err = domain.DecideUpdateProject(reg, domain.UpdateProject{ID: "alpha", Aliases: aliases("a2", "a3")}, pfMeta)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, domain.EventProjectUpdated, evs[0].Type)
	require.Equal(t, domain.ProjectUpdated{Aliases: []string{"a2", "a3"}, Description: "first"}, evs[0].Data)
	evs, err = domain.DecideUpdateProject(reg, domain.UpdateProject{ID: "alpha", Description: desc("second")}, pfMeta)
	require.NoError(t, err)
	require.Equal(t, domain.ProjectUpdated{Aliases: []string{"a1", "a2"}, Description: "second"}, evs[0].Data)
	// Clearing the aliases.
	evs, err = domain.DecideUpdateProject(reg, domain.UpdateProject{ID: "alpha", Aliases: aliases()}, pfMeta)
	require.NoError(t, err)
	require.Equal(t, domain.ProjectUpdated{Aliases: []string{}, Description: "first"}, evs[0].Data)
}

func TestApplyProject(t *testing.T) {
	reg := domain.Registry{}
	aliases := []string{"a1"}
	domain.ApplyProject(reg, domain.NewEvent("alpha", pfMeta, domain.ProjectRegistered{Aliases: aliases, Description: "d"}))
	require.Equal(t, domain.Project{ID: "alpha", Aliases: []string{"a1"}, Description: "d"}, reg["alpha"])
	aliases[0] = "changed"
	require.Equal(t, []string{"a1"}, reg["alpha"].Aliases, "the registry does not share the event's slice")

	domain.ApplyProject(reg, domain.NewEvent("alpha", pfMeta, domain.ProjectUpdated{Aliases: []string{"a2"}, Description: "e"}))
	require.Equal(t, domain.Project{ID: "alpha", Aliases: []string{"a2"}, Description: "e"}, reg["alpha"])
	require.Equal(t, "alpha", reg.Resolve("a2"))
	require.Equal(t, "a1", reg.Resolve("a1"), "a dropped alias no longer resolves")

	domain.ApplyProject(reg, domain.NewEvent("x", pfMeta, domain.StateSet{Category: "c", Key: "k", Value: "v"}))
	require.Len(t, reg, 1, "other events are ignored")
}
