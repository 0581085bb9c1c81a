package eventstore_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// update rewrites the golden fixtures from the events below: go test ./eventstore -run Golden -update.
var update = flag.Bool("update", false, "rewrite the golden event fixtures in testdata")

// goldenSeq is the log position the fixtures are decoded at.
const goldenSeq = 4242

// goldenTime is the time of every golden event: it has nanoseconds, which the log keeps.
var goldenTime = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

// goldenMeta is the metadata of the golden event with the given number.
func goldenMeta(n int, note bool) domain.Meta {
	m := domain.Meta{
		EventID: fmt.Sprintf("0195e7c4-1a2b-7c3d-8e4f-%012d", n),
		Actor:   "claude-code",
		Time:    goldenTime,
	}
	if note {
		m.Note = "reviewed in the weekly triage"
		m.CorrelationID = "req-7f3a9c"
		m.Principal = "assistant-gateway" // a token with the on-behalf right, acting for claude-code
	} else {
		m.Principal = m.Actor
	}
	return m
}

const goldenMemory = "6f1c2d3e-4b5a-4c6d-8e7f-90a1b2c3d4e5"

// goldenEvents is one fixed event of every registered event type at its current version; the
// fixture testdata/<type>.v<version>.json holds its stored form. Values that decode as they
// were encoded only: numbers in a map[string]any are float64.
var goldenEvents = map[string]domain.Event{
	domain.EventMemoryCreated: domain.NewEvent(goldenMemory, goldenMeta(1, true), domain.MemoryCreated{
		MemoryType:    domain.TypeKnowledge,
		Content:       "The ledger's stream denies delete and purge; projections are rebuilt from sequence 1.",
		Project:       "memledger",
		Status:        domain.StatusCandidate,
		Confidence:    0.65,
		SourceChunkID: "chunk-0042",
		DomainTags:    []string{"nats", "event-sourcing"},
		ValidUntil:    ptr(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)),
	}),
	domain.EventMemoryUpdated: domain.NewEvent(goldenMemory, goldenMeta(2, false), domain.MemoryUpdated{
		Changed:    []string{"content", "confidence", "domain_tags", "valid_until", "status"},
		Content:    "The ledger's stream denies delete and purge.",
		Confidence: 0.8,
		DomainTags: []string{"nats"},
		ValidUntil: ptr(time.Date(2027, 6, 30, 12, 0, 0, 0, time.UTC)),
		Status:     domain.StatusActive,
	}),
	domain.EventMemoryPromoted:    domain.NewEvent(goldenMemory, goldenMeta(3, true), domain.MemoryPromoted{}),
	domain.EventMemoryRejected:    domain.NewEvent(goldenMemory, goldenMeta(4, true), domain.MemoryRejected{}),
	domain.EventMemoryInvalidated: domain.NewEvent(goldenMemory, goldenMeta(5, true), domain.MemoryInvalidated{}),
	domain.EventMemorySuperseded: domain.NewEvent(goldenMemory, goldenMeta(6, false), domain.MemorySuperseded{
		SupersededBy: "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d",
	}),
	domain.EventMemoryReinforced: domain.NewEvent(goldenMemory, goldenMeta(7, false), domain.MemoryReinforced{Delta: 0.05}),
	domain.EventMemoryExpired:    domain.NewEvent(goldenMemory, goldenMeta(8, false), domain.MemoryExpired{}),
	domain.EventMemoryReverted: domain.NewEvent(goldenMemory, domain.Meta{
		EventID: "0195e7c4-1a2b-7c3d-8e4f-000000000022", Actor: "ops", Principal: "admin", CorrelationID: "req-revert-1",
		Note: "undo the extractor-v2 run of the night", Time: goldenTime,
	}, domain.MemoryReverted{
		Undoes:           []string{"0195e7c4-1a2b-7c3d-8e4f-000000000002", "0195e7c4-1a2b-7c3d-8e4f-000000000003"},
		Changed:          []string{"content", "status", "confidence"},
		MemoryType:       domain.TypeKnowledge,
		Content:          "The ledger's stream denies delete and purge; projections are rebuilt from sequence 1.",
		Project:          "memledger",
		Status:           domain.StatusCandidate,
		Confidence:       0.65,
		ReferenceCount:   1,
		LastReferencedAt: ptr(time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC)),
		DomainTags:       []string{"nats", "event-sourcing"},
		ValidUntil:       ptr(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)),
	}),
	domain.EventMemoryReconciled: domain.NewEvent(goldenMemory, domain.Meta{
		EventID: "0195e7c4-1a2b-7c3d-8e4f-000000000021", Actor: "atocore-import",
		Note: "reconciled with the memories row: reference_count, last_referenced_at differ", Time: goldenTime,
	}, domain.MemoryReconciled{
		Changed:    []string{"reference_count", "last_referenced_at"},
		MemoryType: domain.TypeKnowledge, Content: "The ledger's stream denies delete and purge.",
		Project: "memledger", Status: domain.StatusActive, Confidence: 0.85, ReferenceCount: 4,
		LastReferencedAt: ptr(time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC)), DomainTags: []string{"nats"},
		CreatedAt: time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC),
	}),

	domain.EventAlertRaised: domain.NewEvent("warning", goldenMeta(9, false), domain.AlertRaised{
		Severity: domain.SeverityWarning,
		Title:    "Harness pass rate dropped",
		Message:  "pass rate 0.82 is below the threshold 0.9",
		Context:  map[string]any{"pass_rate": 0.82, "threshold": 0.9, "run": "nightly-2026-03-14", "regression": true},
	}),
	domain.EventHarnessRecorded: domain.NewEvent("harness", goldenMeta(10, false), domain.HarnessRecorded{
		PassRate: 0.82, Passed: 41, Total: 50,
	}),
	domain.EventDeliveryFailed: domain.NewEvent("webhook", goldenMeta(11, false), domain.DeliveryFailed{
		AlertID: "0195e7c4-1a2b-7c3d-8e4f-000000000009", AlertSeq: 4100, Sink: "webhook", Attempts: 5,
		Error: "POST https://discord.example/api/webhooks/1: 503 Service Unavailable",
	}),

	domain.EventProjectRegistered: domain.NewEvent("memledger", goldenMeta(12, true), domain.ProjectRegistered{
		Aliases: []string{"ledger", "ml"}, Description: "Event-sourced memory ledger on NATS JetStream",
	}),
	domain.EventProjectUpdated: domain.NewEvent("memledger", goldenMeta(13, false), domain.ProjectUpdated{
		Aliases: []string{"ledger"}, Description: "Event-sourced memory ledger",
	}),

	domain.EventStateSet: domain.NewEvent("memledger", goldenMeta(14, false), domain.StateSet{
		Category: "status", Key: "next_milestone", Value: "golden fixtures for every event",
		Source: "standup 2026-03-14", Confidence: 0.9,
	}),
	domain.EventStateInvalidated: domain.NewEvent("memledger", goldenMeta(15, true), domain.StateInvalidated{
		Category: "status", Key: "next_milestone",
	}),

	domain.EventDocumentRecorded: domain.NewEvent("doc-design", goldenMeta(16, false), domain.DocumentRecorded{
		FilePath: "docs/DESIGN.md",
		FileHash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Title:    "memledger: the design in one page",
		DocType:  "markdown",
		Tags:     []string{"design"},
		Chunks: []domain.Chunk{
			{ID: "chunk-0041", DocumentID: "doc-design", ChunkIndex: 0, Content: "The log is the truth.", HeadingPath: "memledger", CharCount: 21},
			{ID: "chunk-0042", DocumentID: "doc-design", ChunkIndex: 1, Content: "One stream, subjects per aggregate.", HeadingPath: "memledger > The log", CharCount: 35},
		},
	}),
	domain.EventChunksAdded: domain.NewEvent("doc-design", goldenMeta(17, false), domain.ChunksAdded{
		Chunks: []domain.Chunk{
			{ID: "chunk-0043", DocumentID: "doc-design", ChunkIndex: 2, Content: "Reads come only from projections.", HeadingPath: "memledger > Reads", CharCount: 33},
		},
	}),
	domain.EventDocumentDeleted: domain.NewEvent("doc-design", goldenMeta(18, true), domain.DocumentDeleted{}),

	domain.EventIntegrityChecked: domain.NewEvent("integrity", goldenMeta(19, false), domain.IntegrityChecked{
		IntegrityReport: domain.IntegrityReport{
			AtSeq:  4200,
			Counts: map[string]int{"orphan_chunk": 1, "duplicate_content": 1},
			Total:  2,
			Findings: []domain.Finding{
				{Check: "orphan_chunk", MemoryID: goldenMemory, ChunkID: "chunk-9999"},
				{Check: "duplicate_content", Project: "memledger", MemoryType: "knowledge",
					Content: "The log is the truth.", MemoryIDs: []string{goldenMemory, "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"}},
			},
		},
	}),
	domain.EventLogLossAccepted: domain.NewEvent("log", goldenMeta(21, true), domain.LogLossAccepted{
		Missing: []domain.SeqRange{{From: 1, To: 9754}, {From: 29263, To: 30000}}, LogLastSeq: 30000,
		ProjectionsAt: 30000, SetAsideAt: "data/projections.db.log-loss-1764590400",
	}),
	domain.EventNightlyRan: domain.NewEvent("nightly", goldenMeta(20, false), domain.NightlyRan{
		Night: "2026-03-14",
		Steps: []domain.StepResult{
			{Name: "expire", Actor: "nightly", Status: "ok", Summary: map[string]any{"expired": 3.0},
				StartedAt: goldenTime, DurationMS: 12},
			{Name: "integrity", Actor: "nightly", Status: "failed", Error: "stream info: timeout",
				StartedAt: goldenTime.Add(time.Second), DurationMS: 5000},
		},
	}),

	domain.EventSubscriptionRegistered: domain.NewEvent("0195e7c4-aaaa-7c3d-8e4f-000000000021", goldenMeta(21, true), domain.SubscriptionRegistered{
		URL: "https://hooks.example/memledger", Description: "the review bot",
		Subjects: []string{"ledger.memory.>", "ledger.alert.critical"}, Types: []string{"memory.promoted", "alert.raised"},
		From:         domain.Position{Kind: domain.PositionTime, Time: ptr(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))},
		SealedSecret: "v1:5f0e8a2c1b3d4e6f:q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJ",
		KeyID:        "5f0e8a2c1b3d4e6f",
	}),
	domain.EventSubscriptionPaused:  domain.NewEvent("0195e7c4-aaaa-7c3d-8e4f-000000000021", goldenMeta(22, true), domain.SubscriptionPaused{}),
	domain.EventSubscriptionResumed: domain.NewEvent("0195e7c4-aaaa-7c3d-8e4f-000000000021", goldenMeta(23, false), domain.SubscriptionResumed{}),
	domain.EventSubscriptionReset: domain.NewEvent("0195e7c4-aaaa-7c3d-8e4f-000000000021", goldenMeta(24, true), domain.SubscriptionReset{
		From: domain.Position{Kind: domain.PositionSeq, Seq: 4000},
	}),
	domain.EventSubscriptionRemoved: domain.NewEvent("0195e7c4-aaaa-7c3d-8e4f-000000000021", goldenMeta(25, false), domain.SubscriptionRemoved{}),

	domain.EventTokenIssued: domain.NewEvent("alice", goldenMeta(26, true), domain.TokenIssued{
		Role: domain.RoleReviewer, OnBehalf: true, ExpiresAt: ptr(time.Date(2027, 3, 14, 0, 0, 0, 0, time.UTC)),
		Digest:     "3c5a1e0f9b8d7c6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa9988",
		DigestKind: domain.DigestHMAC, KeyID: "5f0e8a2c1b3d4e6f",
	}),
	domain.EventTokenRevoked: domain.NewEvent("alice", goldenMeta(27, false), domain.TokenRevoked{}),
	domain.EventTokenSignedOut: domain.NewEvent("alice", goldenMeta(28, false), domain.TokenSignedOut{
		Session: "q83vEjRWeJq83vEjRWeJqw", ExpiresAt: time.Date(2026, 3, 15, 3, 9, 26, 0, time.UTC),
	}),
}

func ptr[T any](v T) *T { return &v }

// fixturePath is the golden fixture of an event type at a schema version.
func fixturePath(typ string, version int) string {
	return filepath.Join("testdata", fmt.Sprintf("%s.v%d.json", typ, version))
}

func TestGoldenEvents(t *testing.T) {
	registered := eventstore.RegisteredTypes()
	for typ, version := range registered {
		t.Run(fmt.Sprintf("%s.v%d", typ, version), func(t *testing.T) {
			ev, ok := goldenEvents[typ]
			require.True(t, ok, "no golden event for %s: add one to goldenEvents and run go test ./eventstore -run Golden -update", typ)
			require.Equal(t, typ, ev.Type)
			path := fixturePath(typ, version)

			encoded, err := eventstore.Encode(ev)
			require.NoError(t, err)
			encoded = append(encoded, '\n')
			if *update {
				require.NoError(t, os.WriteFile(path, encoded, 0o644))
			}
			fixture, err := os.ReadFile(path)
			require.NoError(t, err, "missing fixture: run go test ./eventstore -run Golden -update")

			// The stored form is exactly the fixture: a change of field names, order or
			// formatting is a change of the log's format.
			require.Equal(t, string(fixture), string(encoded),
				"the stored form of %s changed: if that is intended, register version %d with an upcaster from %d instead", typ, version+1, version)

			// The fixture decodes to the event.
			decoded, err := eventstore.Decode(fixture, goldenSeq)
			require.NoError(t, err)
			want := ev
			want.Seq = goldenSeq
			require.Equal(t, want, decoded)
		})
	}
}

func TestEveryRegisteredTypeHasAFixture(t *testing.T) {
	registered := eventstore.RegisteredTypes()
	require.NotEmpty(t, registered)
	for typ, version := range registered {
		require.Contains(t, goldenEvents, typ, "golden event")
		require.FileExists(t, fixturePath(typ, version))
	}
	// And no golden event is left for a type no longer registered.
	for typ := range goldenEvents {
		require.Contains(t, registered, typ, "golden event of an unregistered type")
	}
	for _, typ := range []string{
		domain.EventMemoryCreated, domain.EventMemoryUpdated, domain.EventMemoryPromoted,
		domain.EventMemoryRejected, domain.EventMemoryInvalidated, domain.EventMemorySuperseded,
		domain.EventMemoryReinforced, domain.EventMemoryExpired,
	} {
		require.Contains(t, registered, typ)
	}
}

// TestEveryMutationHasAFixture: each row of the state machine records an event type the codec
// knows, with its golden fixture (the last of a mutation's coupled parts; domain's
// TestMutationCoupling checks the others).
func TestEveryMutationHasAFixture(t *testing.T) {
	registered := eventstore.RegisteredTypes()
	require.NotEmpty(t, domain.Mutations())
	for _, m := range domain.Mutations() {
		version, ok := registered[m.Event]
		require.True(t, ok, "the event %s of mutation %s is registered", m.Event, m.Action)
		require.FileExists(t, fixturePath(m.Event, version))
		require.Contains(t, goldenEvents, m.Event)
	}
}

var fixtureName = regexp.MustCompile(`^([a-z_]+\.[a-z_]+)\.v([0-9]+)\.json$`)

// TestEveryFixtureDecodes reads every fixture, also those of older versions, which must still
// decode (upcast) to the current form of their type.
func TestEveryFixtureDecodes(t *testing.T) {
	registered := eventstore.RegisteredTypes()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(paths), len(registered))
	for _, path := range paths {
		m := fixtureName.FindStringSubmatch(filepath.Base(path))
		require.NotNil(t, m, "fixture %s is not named <type>.v<version>.json", path)
		typ := m[1]
		version, _ := strconv.Atoi(m[2])
		current, ok := registered[typ]
		require.True(t, ok, "fixture %s is of an unregistered type", path)
		require.LessOrEqual(t, version, current, path)

		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		require.True(t, bytes.HasSuffix(raw, []byte("}\n")), "%s ends with a newline", path)
		var env struct {
			Type    string `json:"type"`
			Version int    `json:"version"`
		}
		require.NoError(t, json.Unmarshal(raw, &env))
		require.Equal(t, typ, env.Type, path)
		require.Equal(t, version, env.Version, path)

		ev, err := eventstore.Decode(raw, 1)
		require.NoError(t, err, path)
		require.NotNil(t, ev.Data, path)
		require.Equal(t, typ, ev.Data.EventType(), path)
	}
}

// TestVersion1HasNoPrincipal: an event of schema version 1, written before the ledger
// authenticated, decodes with its actor as it was and an empty principal, its payload as
// version 2 holds it.
func TestVersion1HasNoPrincipal(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.v1.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		var env struct {
			Actor     string          `json:"actor"`
			Principal *string         `json:"principal"`
			Data      json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(raw, &env))
		require.Nil(t, env.Principal, "%s: version 1 has no principal", path)
		ev, err := eventstore.Decode(raw, 1)
		require.NoError(t, err, path)
		require.Equal(t, env.Actor, ev.Actor, path)
		require.NotEmpty(t, ev.Actor, path)
		require.Empty(t, ev.Principal, path)
		m := fixtureName.FindStringSubmatch(filepath.Base(path))
		v2, err := os.ReadFile(fixturePath(m[1], 2))
		require.NoError(t, err, "the version 2 fixture of %s", m[1])
		cur, err := eventstore.Decode(v2, 1)
		require.NoError(t, err)
		require.Equal(t, cur.Data, ev.Data, "%s: the payload is the same in both versions", path)
	}
	// Version 2 records both: whom the change is for and the token it came through.
	v2, err := os.ReadFile(fixturePath(domain.EventMemoryPromoted, 2))
	require.NoError(t, err)
	ev, err := eventstore.Decode(v2, 1)
	require.NoError(t, err)
	require.Equal(t, "claude-code", ev.Actor)
	require.Equal(t, "assistant-gateway", ev.Principal)
}

func TestDecodeUnknownType(t *testing.T) {
	raw := []byte(`{"id":"e-1","type":"memory.archived","version":3,"aggregate_id":"m-1","actor":"a",` +
		`"time":"2026-03-14T16:09:26.5+01:00","data":{"archive":"cold"}}`)
	ev, err := eventstore.Decode(raw, 9)
	require.NoError(t, err)
	require.Nil(t, ev.Data)
	require.Equal(t, domain.Event{
		ID: "e-1", Type: "memory.archived", AggregateID: "m-1", Actor: "a",
		Time: time.Date(2026, 3, 14, 15, 9, 26, 500000000, time.UTC), Seq: 9,
	}, ev)

	// The fold leaves the memory as it was.
	m := domain.Memory{ID: "m-1", Status: domain.StatusActive, Seq: 3}
	require.Equal(t, m, domain.ApplyMemory(m, ev))
}

func TestDecodeErrors(t *testing.T) {
	created := string(mustRead(t, fixturePath(domain.EventMemoryCreated, eventstore.RegisteredTypes()[domain.EventMemoryCreated])))
	current := eventstore.RegisteredTypes()[domain.EventMemoryCreated]
	versioned := func(v int) []byte {
		return bytes.Replace([]byte(created), []byte(fmt.Sprintf(`"version":%d`, current)), []byte(fmt.Sprintf(`"version":%d`, v)), 1)
	}
	tests := map[string]struct {
		raw     []byte
		message string
	}{
		"newer version":  {versioned(current + 1), fmt.Sprintf("memory.created version %d, this program reads up to %d", current+1, current)},
		"version 0":      {versioned(0), "memory.created version 0"},
		"not json":       {[]byte("not json"), "decode event at 7"},
		"bad payload":    {[]byte(`{"id":"e","type":"memory.reinforced","version":1,"aggregate_id":"m","actor":"a","time":"2026-03-14T15:09:26Z","data":{"delta":"much"}}`), "decode event at 7: memory.reinforced"},
		"no payload":     {[]byte(`{"id":"e","type":"memory.reinforced","version":1,"aggregate_id":"m","actor":"a","time":"2026-03-14T15:09:26Z"}`), "decode event at 7: memory.reinforced"},
		"bad time":       {[]byte(`{"id":"e","type":"memory.promoted","version":1,"aggregate_id":"m","actor":"a","time":"yesterday","data":{}}`), "decode event at 7"},
		"envelope array": {[]byte(`[]`), "decode event at 7"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := eventstore.Decode(tt.raw, 7)
			require.ErrorContains(t, err, tt.message)
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	ev := goldenEvents[domain.EventMemoryPromoted]

	unknown := ev
	unknown.Type = "memory.archived"
	_, err := eventstore.Encode(unknown)
	require.ErrorContains(t, err, `unregistered type "memory.archived"`)

	mismatch := ev
	mismatch.Data = domain.MemoryRejected{}
	_, err = eventstore.Encode(mismatch)
	require.Error(t, err)

	noData := ev
	noData.Data = nil
	_, err = eventstore.Encode(noData)
	require.Error(t, err)

	// An unencodable payload.
	alert := goldenEvents[domain.EventAlertRaised]
	p := alert.Data.(domain.AlertRaised)
	p.Context = map[string]any{"f": func() {}}
	alert.Data = p
	_, err = eventstore.Encode(alert)
	require.Error(t, err)
}

func TestEncodeKeepsUTC(t *testing.T) {
	ev := goldenEvents[domain.EventMemoryReinforced]
	ev.Time = goldenTime.In(time.FixedZone("UTC-7", -7*60*60))
	local, err := eventstore.Encode(ev)
	require.NoError(t, err)
	utc, err := eventstore.Encode(goldenEvents[domain.EventMemoryReinforced])
	require.NoError(t, err)
	require.Equal(t, string(utc), string(local))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// TestTokenIssuedVersions: token.issued of versions 1 and 2 held the secret's plain SHA-256;
// they decode as DigestSHA256 of no key, so that their tokens still sign in. Version 3 says
// which digest it holds: the keyed one, and the key's id.
func TestTokenIssuedVersions(t *testing.T) {
	for _, v := range []int{1, 2} {
		raw, err := os.ReadFile(fixturePath(domain.EventTokenIssued, v))
		require.NoError(t, err)
		ev, err := eventstore.Decode(raw, 1)
		require.NoError(t, err)
		p := ev.Data.(domain.TokenIssued)
		require.Equal(t, domain.DigestSHA256, p.DigestKind, "version %d", v)
		require.Empty(t, p.KeyID, "version %d", v)
		require.Equal(t, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", p.Digest, "version %d", v)
		require.Equal(t, domain.RoleReviewer, p.Role)
	}
	raw, err := os.ReadFile(fixturePath(domain.EventTokenIssued, 3))
	require.NoError(t, err)
	ev, err := eventstore.Decode(raw, 1)
	require.NoError(t, err)
	p := ev.Data.(domain.TokenIssued)
	require.Equal(t, domain.DigestHMAC, p.DigestKind)
	require.Equal(t, "5f0e8a2c1b3d4e6f", p.KeyID)
}
