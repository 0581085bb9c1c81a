package domain_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// requireFieldError checks err is a validation error (a 400) about field.
func requireFieldError(t *testing.T, err error, field string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, domain.ErrInvalid)
	require.NotErrorIs(t, err, domain.ErrConflict)
	require.NotErrorIs(t, err, domain.ErrNotFound)
	var fe *domain.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, field, fe.Field, "error: %v", err)
	require.NotEmpty(t, fe.Reason)
	require.Equal(t, field+": "+fe.Reason, err.Error())
}

// decideCreate decides c on a memory that does not exist yet.
func decideCreate(t *testing.T, c domain.CreateMemory) ([]domain.Event, error) {
	t.Helper()
	return domain.DefaultRules().Decide(domain.Memory{}, memID, c, domain.Meta{Actor: "api-http", Time: t0})
}

// createdPayload decides c, requires it to be accepted and returns its payload.
func createdPayload(t *testing.T, c domain.CreateMemory) domain.MemoryCreated {
	t.Helper()
	evs, err := decideCreate(t, c)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	p, ok := evs[0].Data.(domain.MemoryCreated)
	require.True(t, ok, "payload is %T", evs[0].Data)
	return p
}

// ---------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------

func TestCreateValidation(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	cases := []struct {
		name  string
		edit  func(*domain.CreateMemory)
		field string
	}{
		{"unknown memory type", func(c *domain.CreateMemory) { c.MemoryType = "fact" }, "memory_type"},
		{"empty memory type", func(c *domain.CreateMemory) { c.MemoryType = "" }, "memory_type"},
		{"memory type wrong case", func(c *domain.CreateMemory) { c.MemoryType = "Identity" }, "memory_type"},
		{"unknown status", func(c *domain.CreateMemory) { c.Status = "pending" }, "status"},
		{"status wrong case", func(c *domain.CreateMemory) { c.Status = "Active" }, "status"},
		{"new memory invalid", func(c *domain.CreateMemory) { c.Status = "invalid" }, "status"},
		{"new memory superseded", func(c *domain.CreateMemory) { c.Status = "superseded" }, "status"},
		{"empty content", func(c *domain.CreateMemory) { c.Content = "" }, "content"},
		{"whitespace content", func(c *domain.CreateMemory) { c.Content = " \t\n\r  " }, "content"},
		{"content over max (ascii)", func(c *domain.CreateMemory) { c.Content = long("a", 2001) }, "content"},
		{"content over max (2-byte runes)", func(c *domain.CreateMemory) { c.Content = long("é", 2001) }, "content"},
		{"content over max (4-byte runes)", func(c *domain.CreateMemory) { c.Content = long("🙂", 2001) }, "content"},
		{"content not utf-8", func(c *domain.CreateMemory) { c.Content = "bad \xff byte" }, "content"},
		{"confidence below 0", func(c *domain.CreateMemory) { c.Confidence = ptr(-0.01) }, "confidence"},
		{"confidence above 1", func(c *domain.CreateMemory) { c.Confidence = ptr(1.01) }, "confidence"},
		{"confidence NaN", func(c *domain.CreateMemory) { c.Confidence = ptr(math.NaN()) }, "confidence"},
		{"confidence +Inf", func(c *domain.CreateMemory) { c.Confidence = ptr(math.Inf(1)) }, "confidence"},
		{"11 distinct tags", func(c *domain.CreateMemory) {
			c.DomainTags = []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}
		}, "domain_tags"},
		{"11 distinct tags after normalising", func(c *domain.CreateMemory) {
			c.DomainTags = []string{"A", "b", "C", "d", "E", "f", "G", "h", "I", "j", " K "}
		}, "domain_tags"},
		{"tag too long", func(c *domain.CreateMemory) { c.DomainTags = []string{long("ü", 65)} }, "domain_tags"},
		{"project with space and capitals", func(c *domain.CreateMemory) { c.Project = "My Project" }, "project"},
		{"project with underscore", func(c *domain.CreateMemory) { c.Project = "a_b" }, "project"},
		{"project leading dash", func(c *domain.CreateMemory) { c.Project = "-a" }, "project"},
		{"project trailing dash", func(c *domain.CreateMemory) { c.Project = "a-" }, "project"},
		{"project double dash", func(c *domain.CreateMemory) { c.Project = "a--b" }, "project"},
		{"project capital", func(c *domain.CreateMemory) { c.Project = "AtoCore" }, "project"},
		{"project too long", func(c *domain.CreateMemory) { c.Project = long("a", 65) }, "project"},
		{"source chunk with spaces", func(c *domain.CreateMemory) { c.SourceChunkID = " chunk-1" }, "source_chunk_id"},
		{"source chunk too long", func(c *domain.CreateMemory) { c.SourceChunkID = long("c", 129) }, "source_chunk_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := baseCreate("")
			tc.edit(&c)
			evs, err := decideCreate(t, c)
			requireFieldError(t, err, tc.field)
			require.Empty(t, evs)
		})
	}
}

func TestCreateAccepted(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*domain.CreateMemory)
		check func(*testing.T, domain.MemoryCreated)
	}{
		{"defaults", func(c *domain.CreateMemory) { c.Status = ""; c.Confidence = nil }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, active, p.Status)
			require.Equal(t, domain.DefaultConfidence, p.Confidence)
			require.Equal(t, 1.0, p.Confidence)
		}},
		{"candidate", func(c *domain.CreateMemory) { c.Status = "candidate" }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, candidate, p.Status)
		}},
		{"confidence 0 is kept, not defaulted", func(c *domain.CreateMemory) { c.Confidence = ptr(0.0) }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, 0.0, p.Confidence)
		}},
		{"confidence 1", func(c *domain.CreateMemory) { c.Confidence = ptr(1.0) }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, 1.0, p.Confidence)
		}},
		{"content trimmed", func(c *domain.CreateMemory) { c.Content = "\n  likes Go \t" }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, "likes Go", p.Content)
		}},
		{"content at max in multibyte runes", func(c *domain.CreateMemory) { c.Content = strings.Repeat("é", 2000) }, func(t *testing.T, p domain.MemoryCreated) {
			require.Len(t, p.Content, 4000) // bytes: the limit counts characters
		}},
		{"content at max in 4-byte runes, padded", func(c *domain.CreateMemory) { c.Content = "  " + strings.Repeat("🙂", 2000) + "  " }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, strings.Repeat("🙂", 2000), p.Content)
		}},
		{"tags normalised", func(c *domain.CreateMemory) {
			c.DomainTags = []string{" Rust ", "rust", "", "   ", "Go", "GO", "go ", "Data-Eng"}
		}, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, []string{"rust", "go", "data-eng"}, p.DomainTags)
		}},
		{"no tags is an empty list", func(c *domain.CreateMemory) { c.DomainTags = nil }, func(t *testing.T, p domain.MemoryCreated) {
			require.NotNil(t, p.DomainTags)
			require.Empty(t, p.DomainTags)
		}},
		{"10 distinct tags among duplicates", func(c *domain.CreateMemory) {
			c.DomainTags = []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "A", " b", "J "}
		}, func(t *testing.T, p domain.MemoryCreated) {
			require.Len(t, p.DomainTags, 10)
		}},
		{"tag at max length", func(c *domain.CreateMemory) { c.DomainTags = []string{strings.Repeat("ü", 64)} }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, []string{strings.Repeat("ü", 64)}, p.DomainTags)
		}},
		{"global project", func(c *domain.CreateMemory) { c.Project = "" }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, "", p.Project)
		}},
		{"blank project is global", func(c *domain.CreateMemory) { c.Project = "   " }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, "", p.Project)
		}},
		{"project atocore", func(c *domain.CreateMemory) { c.Project = "atocore" }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, "atocore", p.Project)
		}},
		{"project p-06-x", func(c *domain.CreateMemory) { c.Project = "p-06-x" }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, "p-06-x", p.Project)
		}},
		{"project trimmed", func(c *domain.CreateMemory) { c.Project = " atocore " }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, "atocore", p.Project)
		}},
		{"project at max length", func(c *domain.CreateMemory) { c.Project = strings.Repeat("a", 64) }, func(t *testing.T, p domain.MemoryCreated) {
			require.Len(t, p.Project, 64)
		}},
		{"source chunk kept", func(c *domain.CreateMemory) { c.SourceChunkID = "chunk-42" }, func(t *testing.T, p domain.MemoryCreated) {
			require.Equal(t, "chunk-42", p.SourceChunkID)
		}},
		{"valid_until in UTC", func(c *domain.CreateMemory) {
			c.ValidUntil = ptr(time.Date(2026, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600)))
		}, func(t *testing.T, p domain.MemoryCreated) {
			require.NotNil(t, p.ValidUntil)
			require.Equal(t, time.UTC, p.ValidUntil.Location())
			require.True(t, p.ValidUntil.Equal(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)))
		}},
		{"every memory type", func(c *domain.CreateMemory) {}, func(t *testing.T, p domain.MemoryCreated) {
			for _, mt := range []string{"identity", "preference", "project", "episodic", "knowledge", "adaptation"} {
				c := baseCreate("")
				c.MemoryType = mt
				require.Equal(t, domain.MemoryType(mt), createdPayload(t, c).MemoryType)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := baseCreate(active)
			tc.edit(&c)
			tc.check(t, createdPayload(t, c))
		})
	}
}

// The caller's ValidUntil and tag slice are not shared with the event.
func TestCreateDoesNotAliasCommand(t *testing.T) {
	vu := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	c := baseCreate("")
	c.ValidUntil = &vu
	c.DomainTags = []string{"a", "b"}
	p := createdPayload(t, c)
	vu = vu.Add(time.Hour)
	c.DomainTags[0] = "zzz"
	require.Equal(t, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), *p.ValidUntil)
	require.Equal(t, []string{"a", "b"}, p.DomainTags)
}

func TestDecideEventCarriesMeta(t *testing.T) {
	at := time.Date(2026, 4, 16, 23, 54, 10, 0, time.FixedZone("CEST", 2*3600))
	meta := domain.Meta{EventID: "ev-123", Actor: "human-triage", Note: "looks right",
		CorrelationID: "req-9", Time: at}
	evs, err := domain.DefaultRules().Decide(domain.Memory{}, memID, baseCreate(""), meta)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	ev := evs[0]
	require.Equal(t, "ev-123", ev.ID)
	require.Equal(t, domain.EventMemoryCreated, ev.Type)
	require.Equal(t, memID, ev.AggregateID)
	require.Equal(t, "human-triage", ev.Actor)
	require.Equal(t, "looks right", ev.Note)
	require.Equal(t, "req-9", ev.CorrelationID)
	require.Equal(t, time.UTC, ev.Time.Location())
	require.True(t, ev.Time.Equal(at))
	require.Zero(t, ev.Seq, "the log numbers events, not Decide")

	// The same for a transition of an existing memory.
	m := memoryIn(t, candidate)
	evs, err = domain.DefaultRules().Decide(m, memID, domain.RejectMemory{}, meta)
	require.NoError(t, err)
	require.Equal(t, "looks right", evs[0].Note)
	require.Equal(t, domain.MemoryRejected{}, evs[0].Data)
}

// Limits come from Rules, so they can be configured.
func TestCustomRules(t *testing.T) {
	r := domain.Rules{MaxContentLength: 5, MaxTags: 2, MaxTagLength: 3, MaxNoteLength: 4}
	meta := domain.Meta{Actor: "api-http", Time: t0}
	decide := func(c domain.CreateMemory, m domain.Meta) error {
		_, err := r.Decide(domain.Memory{}, memID, c, m)
		return err
	}
	c := baseCreate("")
	c.Content, c.DomainTags = "héllo", []string{"abc", "de"}
	require.NoError(t, decide(c, meta))

	c2 := c
	c2.Content = "héllo!"
	requireFieldError(t, decide(c2, meta), "content")

	c2 = c
	c2.DomainTags = []string{"a", "b", "c"}
	requireFieldError(t, decide(c2, meta), "domain_tags")

	c2 = c
	c2.DomainTags = []string{"abcd"}
	requireFieldError(t, decide(c2, meta), "domain_tags")

	m2 := meta
	m2.Note = "ñote"
	require.NoError(t, decide(c, m2))
	m2.Note = "notes"
	requireFieldError(t, decide(c, m2), "note")
}

// ---------------------------------------------------------------------------------------------
// Meta: actor and note, checked for every command.
// ---------------------------------------------------------------------------------------------

func TestActorValidation(t *testing.T) {
	bad := map[string]string{
		"empty":          "",
		"space":          " ",
		"inner space":    "api http",
		"leading space":  " api-http",
		"trailing space": "api-http ",
		"leading dash":   "-api",
		"leading dot":    ".api",
		"forbidden char": "api!http",
		"non-ascii":      "ähnlich",
		"too long (65)":  strings.Repeat("a", 65),
		"newline":        "api\nhttp",
	}
	good := []string{"api-http", "human-triage", "phase10-auto-promote", "candidate-expiry",
		"reinforcement", "user@example.com", "svc:worker/1", "a", "A.b_c", strings.Repeat("a", 64)}

	m := memoryIn(t, candidate)
	cmds := map[string]domain.Command{"create": baseCreate(""), "reinforce": domain.ReinforceMemory{}}
	for cmdName, cmd := range cmds {
		state := m
		if cmdName == "create" {
			state = domain.Memory{}
		}
		for name, actor := range bad {
			t.Run(cmdName+"/bad/"+name, func(t *testing.T) {
				evs, err := domain.DefaultRules().Decide(state, memID, cmd, domain.Meta{Actor: actor, Time: t0})
				requireFieldError(t, err, "actor")
				require.Empty(t, evs)
			})
		}
		for _, actor := range good {
			t.Run(cmdName+"/good/"+actor, func(t *testing.T) {
				evs, err := domain.DefaultRules().Decide(state, memID, cmd, domain.Meta{Actor: actor, Time: t0})
				require.NoError(t, err)
				require.Len(t, evs, 1)
				require.Equal(t, actor, evs[0].Actor)
			})
		}
	}
}

func TestNoteValidation(t *testing.T) {
	m := memoryIn(t, active)
	decide := func(note string) error {
		_, err := domain.DefaultRules().Decide(m, memID, domain.InvalidateMemory{},
			domain.Meta{Actor: "api-http", Note: note, Time: t0})
		return err
	}
	require.NoError(t, decide(""))
	require.NoError(t, decide(strings.Repeat("ß", 2000)), "the limit counts characters, not bytes")
	requireFieldError(t, decide(strings.Repeat("ß", 2001)), "note")
	requireFieldError(t, decide(strings.Repeat("n", 2001)), "note")
}

// ---------------------------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------------------------

func TestUpdateValidation(t *testing.T) {
	eleven := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}
	cases := []struct {
		name  string
		cmd   domain.UpdateMemory
		field string
	}{
		{"no fields", domain.UpdateMemory{}, "body"},
		{"unknown memory type", domain.UpdateMemory{MemoryType: ptr("fact")}, "memory_type"},
		{"unknown status", domain.UpdateMemory{Status: ptr("archived")}, "status"},
		{"empty status", domain.UpdateMemory{Status: ptr("")}, "status"},
		{"empty content", domain.UpdateMemory{Content: ptr("")}, "content"},
		{"whitespace content", domain.UpdateMemory{Content: ptr("  \n\t ")}, "content"},
		{"content too long in runes", domain.UpdateMemory{Content: ptr(strings.Repeat("ж", 2001))}, "content"},
		{"confidence below 0", domain.UpdateMemory{Confidence: ptr(-0.5)}, "confidence"},
		{"confidence above 1", domain.UpdateMemory{Confidence: ptr(1.5)}, "confidence"},
		{"confidence NaN", domain.UpdateMemory{Confidence: ptr(math.NaN())}, "confidence"},
		{"too many tags", domain.UpdateMemory{DomainTags: &eleven}, "domain_tags"},
		{"tag too long", domain.UpdateMemory{DomainTags: ptr([]string{strings.Repeat("t", 65)})}, "domain_tags"},
		// An invalid field is refused even when another field is a valid change.
		{"valid content, bad confidence", domain.UpdateMemory{Content: ptr("new"), Confidence: ptr(2.0)}, "confidence"},
	}
	for _, from := range []domain.Status{candidate, active} {
		for _, tc := range cases {
			t.Run(string(from)+"/"+tc.name, func(t *testing.T) {
				l := ledgerIn(t, from)
				before := l.m
				evs, err := l.try(tc.cmd)
				requireFieldError(t, err, tc.field)
				require.Empty(t, evs)
				require.Equal(t, before, l.m)
			})
		}
	}
}

// An update whose fields all equal the current values records nothing and is not an error.
func TestUpdateThatChangesNothing(t *testing.T) {
	vu := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	l := newLedger(t)
	c := baseCreate(candidate)
	c.Confidence = ptr(0.8)
	c.DomainTags = []string{"editor", "style"}
	c.ValidUntil = &vu
	l.must(c)
	before := l.m

	cases := map[string]domain.UpdateMemory{
		"same content":                 {Content: ptr("prefers tabs over spaces")},
		"same content once trimmed":    {Content: ptr("  prefers tabs over spaces\n")},
		"same memory type":             {MemoryType: ptr("preference")},
		"same confidence":              {Confidence: ptr(0.8)},
		"same tags once normalised":    {DomainTags: ptr([]string{" EDITOR", "editor", "Style", ""})},
		"same valid_until, other zone": {SetValidUntil: true, ValidUntil: ptr(vu.In(time.FixedZone("X", -5*3600)))},
		"same status":                  {Status: ptr("candidate")},
		"everything the same": {
			Content: ptr("prefers tabs over spaces"), MemoryType: ptr("preference"),
			Confidence: ptr(0.8), DomainTags: ptr([]string{"editor", "style"}),
			SetValidUntil: true, ValidUntil: &vu, Status: ptr("candidate"),
		},
	}
	for name, cmd := range cases {
		t.Run(name, func(t *testing.T) {
			evs, err := l.try(cmd)
			require.NoError(t, err)
			require.Empty(t, evs)
			require.Equal(t, before, l.m)
		})
	}

	// Clearing an expiry that is not set is no change either.
	l2 := ledgerIn(t, active)
	evs, err := l2.try(domain.UpdateMemory{SetValidUntil: true})
	require.NoError(t, err)
	require.Empty(t, evs)
	// Nor are empty tags on a memory without tags.
	l2.must(domain.UpdateMemory{DomainTags: ptr([]string{})})
	evs, err = l2.try(domain.UpdateMemory{DomainTags: ptr([]string{" ", ""})})
	require.NoError(t, err)
	require.Empty(t, evs)
}

// An update records exactly the fields that change, in a fixed order, with normalised values.
func TestUpdatePayload(t *testing.T) {
	l := ledgerIn(t, active)
	vu := time.Date(2026, 7, 1, 9, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	evs, err := l.try(domain.UpdateMemory{
		Status:        ptr("active"), // unchanged: not recorded
		SetValidUntil: true, ValidUntil: &vu,
		DomainTags: ptr([]string{"Editor", "Go"}),
		Confidence: ptr(0.4),
		Content:    ptr(" prefers tabs "),
		MemoryType: ptr("knowledge"),
	})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	u, ok := evs[0].Data.(domain.MemoryUpdated)
	require.True(t, ok)
	require.Equal(t, []string{"memory_type", "content", "confidence", "domain_tags", "valid_until"}, u.Changed)
	require.Equal(t, domain.TypeKnowledge, u.MemoryType)
	require.Equal(t, "prefers tabs", u.Content)
	require.Equal(t, 0.4, u.Confidence)
	require.Equal(t, []string{"editor", "go"}, u.DomainTags)
	require.Equal(t, time.UTC, u.ValidUntil.Location())
	require.True(t, u.ValidUntil.Equal(vu))
	require.Empty(t, u.Status)

	// Only the tags differ here (editor is already there).
	evs, err = l.try(domain.UpdateMemory{Content: ptr("prefers tabs"), DomainTags: ptr([]string{"editor"})})
	require.NoError(t, err)
	require.Equal(t, []string{"domain_tags"}, evs[0].Data.(domain.MemoryUpdated).Changed)

	// Confidence may be set to 0.
	evs, err = l.try(domain.UpdateMemory{Confidence: ptr(0.0)})
	require.NoError(t, err)
	require.Equal(t, []string{"confidence"}, evs[0].Data.(domain.MemoryUpdated).Changed)
	require.Equal(t, 0.0, l.m.Confidence)
}

// ---------------------------------------------------------------------------------------------
// Supersede, reinforce, auto-promote, expire
// ---------------------------------------------------------------------------------------------

func TestSupersedeValidation(t *testing.T) {
	cases := []struct {
		name  string
		by    string
		field string // "" when accepted
	}{
		{"by itself", memID, "superseded_by"},
		{"leading space", " " + otherID, "superseded_by"},
		{"trailing space", otherID + " ", "superseded_by"},
		{"too long", strings.Repeat("x", 129), "superseded_by"},
		{"by another memory", otherID, ""},
		{"replacement unknown", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := ledgerIn(t, active)
			evs, err := l.try(domain.SupersedeMemory{SupersededBy: tc.by})
			if tc.field != "" {
				requireFieldError(t, err, tc.field)
				require.Equal(t, active, l.m.Status)
				return
			}
			require.NoError(t, err)
			require.Equal(t, domain.MemorySuperseded{SupersededBy: tc.by}, evs[0].Data)
			require.Equal(t, superseded, l.m.Status)
			require.Equal(t, tc.by, l.m.SupersededBy)
		})
	}
}

func TestReinforceDelta(t *testing.T) {
	cases := []struct {
		name  string
		delta float64
		want  float64 // recorded delta; 0 means refused
	}{
		{"zero means the default", 0, domain.DefaultReinforceDelta},
		{"small", 0.01, 0.01},
		{"default explicitly", 0.05, 0.05},
		{"one", 1, 1},
		{"negative", -0.05, 0},
		{"above one", 1.0001, 0},
		{"NaN", math.NaN(), 0},
		{"+Inf", math.Inf(1), 0},
		{"-Inf", math.Inf(-1), 0},
	}
	for _, from := range []domain.Status{candidate, active} {
		for _, tc := range cases {
			t.Run(string(from)+"/"+tc.name, func(t *testing.T) {
				l := ledgerIn(t, from)
				evs, err := l.try(domain.ReinforceMemory{Delta: tc.delta})
				if tc.want == 0 {
					requireFieldError(t, err, "delta")
					require.Zero(t, l.m.ReferenceCount)
					return
				}
				require.NoError(t, err)
				require.Equal(t, domain.MemoryReinforced{Delta: tc.want}, evs[0].Data)
				require.Equal(t, 1, l.m.ReferenceCount)
			})
		}
	}
}

// reinforcedCandidate is a candidate created with confidence conf and reinforced refs times by
// the default delta.
func reinforcedCandidate(t *testing.T, conf float64, refs int) *ledger {
	t.Helper()
	l := newLedger(t)
	c := baseCreate(candidate)
	c.Confidence = &conf
	l.must(c)
	for i := 0; i < refs; i++ {
		l.must(domain.ReinforceMemory{})
	}
	return l
}

func TestAutoPromoteThresholds(t *testing.T) {
	defaults := domain.AutoPromoteMemory{
		MinReferenceCount: domain.DefaultAutoPromoteRefs,
		MinConfidence:     domain.DefaultAutoPromoteConf,
	}
	require.Equal(t, 3, domain.DefaultAutoPromoteRefs)
	require.Equal(t, 0.7, domain.DefaultAutoPromoteConf)

	setConf := func(l *ledger, c float64) *ledger { return l.must(domain.UpdateMemory{Confidence: &c}) }
	cases := []struct {
		name    string
		ledger  func(*testing.T) *ledger
		promote bool
	}{
		{"never reinforced", func(t *testing.T) *ledger { return reinforcedCandidate(t, 1, 0) }, false},
		{"2 references, full confidence", func(t *testing.T) *ledger { return reinforcedCandidate(t, 1, 2) }, false},
		{"3 references, confidence just below", func(t *testing.T) *ledger {
			return setConf(reinforcedCandidate(t, 0.5, 3), 0.69)
		}, false},
		{"3 references, confidence exactly at threshold", func(t *testing.T) *ledger {
			return setConf(reinforcedCandidate(t, 0.5, 3), 0.7)
		}, true},
		// 0.55 + 3 × 0.05 in floating point: the threshold must still be reached.
		{"0.55 reinforced 3 times by default delta", func(t *testing.T) *ledger { return reinforcedCandidate(t, 0.55, 3) }, true},
		{"0.5 reinforced 3 times: 0.65", func(t *testing.T) *ledger { return reinforcedCandidate(t, 0.5, 3) }, false},
		{"0.5 reinforced 4 times", func(t *testing.T) *ledger { return reinforcedCandidate(t, 0.5, 4) }, true},
		{"many references", func(t *testing.T) *ledger { return reinforcedCandidate(t, 0.9, 7) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.ledger(t)
			before := l.m
			evs, err := l.try(defaults)
			if !tc.promote {
				require.ErrorIs(t, err, domain.ErrConflict)
				require.Contains(t, err.Error(), memID)
				require.Empty(t, evs)
				require.Equal(t, before, l.m)
				return
			}
			require.NoError(t, err)
			require.Len(t, evs, 1)
			require.Equal(t, domain.EventMemoryPromoted, evs[0].Type)
			require.Equal(t, domain.ActionPromoted, domain.AuditAction(before, evs[0]))
			require.Equal(t, active, l.m.Status)
			require.Equal(t, before.ReferenceCount, l.m.ReferenceCount)
			require.Equal(t, before.Confidence, l.m.Confidence)
		})
	}

	// A reinforced active memory is not "auto-promoted" again: that is a state-machine conflict.
	l := ledgerIn(t, active)
	for i := 0; i < 3; i++ {
		l.must(domain.ReinforceMemory{})
	}
	_, err := l.try(defaults)
	requireConflictNaming(t, err, active)
}

func TestExpireStaleCandidates(t *testing.T) {
	maxAge := domain.DefaultCandidateMaxAge
	require.Equal(t, 14*24*time.Hour, maxAge)

	cases := []struct {
		name   string
		ledger func(*testing.T) *ledger
		now    func(created time.Time) time.Time
		expire bool
	}{
		{"exactly max age", func(t *testing.T) *ledger { return ledgerIn(t, candidate) },
			func(c time.Time) time.Time { return c.Add(maxAge) }, true},
		{"well past max age", func(t *testing.T) *ledger { return ledgerIn(t, candidate) },
			func(c time.Time) time.Time { return c.AddDate(0, 2, 0) }, true},
		{"one nanosecond short", func(t *testing.T) *ledger { return ledgerIn(t, candidate) },
			func(c time.Time) time.Time { return c.Add(maxAge - time.Nanosecond) }, false},
		{"brand new", func(t *testing.T) *ledger { return ledgerIn(t, candidate) },
			func(c time.Time) time.Time { return c }, false},
		{"old but reinforced once", func(t *testing.T) *ledger { return reinforcedCandidate(t, 0.5, 1) },
			func(c time.Time) time.Time { return c.AddDate(1, 0, 0) }, false},
		// Age counts from creation, not from the last update.
		{"old, recently updated", func(t *testing.T) *ledger {
			l := ledgerIn(t, candidate)
			l.now = l.now.Add(maxAge)
			return l.must(domain.UpdateMemory{Content: ptr("prefers tabs, still")})
		}, func(c time.Time) time.Time { return c.Add(maxAge) }, true},
		{"Now in another zone", func(t *testing.T) *ledger { return ledgerIn(t, candidate) },
			func(c time.Time) time.Time { return c.Add(maxAge).In(time.FixedZone("X", 9*3600)) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.ledger(t)
			before := l.m
			evs, err := l.try(domain.ExpireMemory{Now: tc.now(before.CreatedAt), MaxAge: maxAge})
			if !tc.expire {
				require.ErrorIs(t, err, domain.ErrConflict)
				require.Contains(t, err.Error(), memID)
				require.Empty(t, evs)
				require.Equal(t, before, l.m)
				return
			}
			require.NoError(t, err)
			require.Len(t, evs, 1)
			require.Equal(t, domain.EventMemoryExpired, evs[0].Type)
			require.Equal(t, domain.ActionExpired, domain.AuditAction(before, evs[0]))
			require.Equal(t, invalid, l.m.Status)
		})
	}

	// An old active memory never expires: conflict from the state machine.
	l := ledgerIn(t, active)
	_, err := l.try(domain.ExpireMemory{Now: t0.AddDate(1, 0, 0), MaxAge: maxAge})
	requireConflictNaming(t, err, active)
}

// A Command from outside the known set is refused as invalid, not applied.
type strangeCommand struct{ domain.PromoteMemory }

func TestUnknownCommandIsInvalid(t *testing.T) {
	l := ledgerIn(t, candidate)
	before := l.m
	evs, err := l.try(strangeCommand{})
	require.ErrorIs(t, err, domain.ErrInvalid)
	require.Contains(t, err.Error(), "strangeCommand")
	require.Empty(t, evs)
	require.Equal(t, before, l.m)
}

// ---------------------------------------------------------------------------------------------
// The exported validators, directly.
// ---------------------------------------------------------------------------------------------

func TestNormalizeTags(t *testing.T) {
	got, err := domain.NormalizeTags([]string{" B", "a", "b ", "", "A", "c"}, 10, 64)
	require.NoError(t, err)
	require.Equal(t, []string{"b", "a", "c"}, got, "first occurrence keeps its position")

	got, err = domain.NormalizeTags(nil, 10, 64)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Empty(t, got)

	_, err = domain.NormalizeTags([]string{"a", "b", "c"}, 2, 64)
	requireFieldError(t, err, "domain_tags")
}

func TestParseAndCheckHelpers(t *testing.T) {
	for _, mt := range domain.MemoryTypes {
		got, err := domain.ParseMemoryType(string(mt))
		require.NoError(t, err)
		require.Equal(t, mt, got)
	}
	_, err := domain.ParseMemoryType("fact")
	requireFieldError(t, err, "memory_type")
	require.Contains(t, err.Error(), "identity, preference, project, episodic, knowledge, adaptation")

	for _, s := range allStatuses {
		got, err := domain.ParseStatus(string(s))
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	_, err = domain.ParseStatus("done")
	requireFieldError(t, err, "status")

	require.NoError(t, domain.CheckConfidence(0))
	require.NoError(t, domain.CheckConfidence(1))
	requireFieldError(t, domain.CheckConfidence(math.Nextafter(1, 2)), "confidence")
	requireFieldError(t, domain.CheckConfidence(math.Copysign(math.SmallestNonzeroFloat64, -1)), "confidence")

	require.NoError(t, domain.CheckProjectID("project_id", "p-06-x"))
	requireFieldError(t, domain.CheckProjectID("project_id", ""), "project_id")
	requireFieldError(t, domain.CheckProjectID("alias", "My Project"), "alias")

	require.NoError(t, domain.CheckRef("source_chunk_id", ""))
	require.NoError(t, domain.CheckRef("source_chunk_id", strings.Repeat("c", 128)))
}
