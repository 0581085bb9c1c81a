package domain_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// marshalBoth returns m's JSON from encoding/json and from AppendJSON.
func marshalBoth(t *testing.T, m domain.Memory) (string, string, error, error) {
	t.Helper()
	want, wantErr := json.Marshal(m)
	got, gotErr := m.AppendJSON([]byte("prefix"))
	if gotErr == nil {
		require.Equal(t, "prefix", string(got[:6]), "AppendJSON keeps what it appends to")
		got = got[6:]
	}
	return string(want), string(got), wantErr, gotErr
}

func TestMemoryAppendJSONIsMarshal(t *testing.T) {
	at := time.Date(2026, 11, 28, 17, 20, 30, 123456789, time.UTC)
	whole := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	offset := time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 5*3600+1800))
	full := domain.Memory{
		ID: "0193a0b4-7c1e-7000-8000-000000000001", MemoryType: domain.TypeKnowledge,
		Content: "plain", Project: "p-1", Status: domain.StatusActive, Confidence: 0.7,
		ReferenceCount: 3, LastReferencedAt: &at, SourceChunkID: "chunk-1",
		DomainTags: []string{"go", "nats"}, ValidUntil: &whole, SupersededBy: "other",
		CreatedAt: at, UpdatedAt: offset, Seq: math.MaxUint64,
	}
	cases := map[string]func(m *domain.Memory){
		"full":           func(*domain.Memory) {},
		"zero":           func(m *domain.Memory) { *m = domain.Memory{} },
		"html":           func(m *domain.Memory) { m.Content = `<script>alert("x&y")</script>` },
		"controls":       func(m *domain.Memory) { m.Content = "a\x00b\x01\x1f\b\f\n\r\t\\\"\x7f" },
		"unicode":        func(m *domain.Memory) { m.Content = "é 漢字 🙂 \u2028 \u2029 \u00a0" },
		"invalid utf-8":  func(m *domain.Memory) { m.Content = "a\xffb\xc3(\xed\xa0\x80z\xf0\x9f" },
		"empty tags":     func(m *domain.Memory) { m.DomainTags = []string{} },
		"nil tags":       func(m *domain.Memory) { m.DomainTags = nil },
		"tiny":           func(m *domain.Memory) { m.Confidence = 1e-7 },
		"small":          func(m *domain.Memory) { m.Confidence = 0.000001 },
		"exponent":       func(m *domain.Memory) { m.Confidence = 1.5e-10 },
		"big":            func(m *domain.Memory) { m.Confidence = 1e21 },
		"negative":       func(m *domain.Memory) { m.Confidence = -0.25; m.ReferenceCount = -4 },
		"rounded":        func(m *domain.Memory) { m.Confidence = 0.1 + 0.2 },
		"one":            func(m *domain.Memory) { m.Confidence = 1 },
		"no times":       func(m *domain.Memory) { m.LastReferencedAt, m.ValidUntil = nil, nil },
		"year 0":         func(m *domain.Memory) { m.CreatedAt = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) },
		"year 9999":      func(m *domain.Memory) { m.UpdatedAt = time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC) },
		"year 10000":     func(m *domain.Memory) { m.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"negative year":  func(m *domain.Memory) { v := time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC); m.ValidUntil = &v },
		"NaN":            func(m *domain.Memory) { m.Confidence = math.NaN() },
		"infinite":       func(m *domain.Memory) { m.Confidence = math.Inf(-1) },
		"zone seconds":   func(m *domain.Memory) { m.CreatedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("s", 30)) },
		"zone 24 hours":  func(m *domain.Memory) { m.CreatedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("h", 24*3600)) },
		"quotes in tags": func(m *domain.Memory) { m.DomainTags = []string{`a"b`, `c\d`, "<>"} },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			m := full
			change(&m)
			want, got, wantErr, gotErr := marshalBoth(t, m)
			if wantErr != nil {
				require.Error(t, gotErr, "Marshal refuses it: %v", wantErr)
				return
			}
			require.NoError(t, gotErr)
			require.Equal(t, want, got)
		})
	}
}

func FuzzMemoryAppendJSON(f *testing.F) {
	f.Add("id", "content <&> \u2028", "project", "tag", 0.5, int64(0), -3)
	f.Add("\xff", "\x00\x1f\"\\", "", "", 1e-9, int64(1700000000123456789), 0)
	f.Fuzz(func(t *testing.T, id, content, project, tag string, confidence float64, nanos int64, refs int) {
		at := time.Unix(0, nanos).UTC()
		m := domain.Memory{ID: id, MemoryType: domain.MemoryType(tag), Content: content, Project: project,
			Status: domain.Status(project), Confidence: confidence, ReferenceCount: refs,
			LastReferencedAt: &at, DomainTags: []string{tag, content}, CreatedAt: at, UpdatedAt: at,
			Seq: uint64(nanos)}
		want, got, wantErr, gotErr := marshalBoth(t, m)
		if wantErr != nil {
			require.Error(t, gotErr)
			return
		}
		require.NoError(t, gotErr)
		require.Equal(t, want, got)
	})
}

func TestMemoryCreatedAppendJSONIsMarshal(t *testing.T) {
	until := time.Date(2027, 1, 1, 0, 0, 0, 5, time.UTC)
	for name, p := range map[string]domain.MemoryCreated{
		"full": {MemoryType: domain.TypePreference, Content: "likes <b>&</b> \u2028", Project: "p", Status: domain.StatusCandidate,
			Confidence: 0.35, SourceChunkID: "c\x00", DomainTags: []string{"a", "\xff"}, ValidUntil: &until},
		"zero":       {},
		"empty tags": {DomainTags: []string{}},
		"tiny":       {Confidence: 2e-7},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(p)
			require.NoError(t, err)
			got, err := p.AppendJSON(nil)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
	_, err := domain.MemoryCreated{Confidence: math.NaN()}.AppendJSON(nil)
	require.Error(t, err)
}

func FuzzMemoryCreatedAppendJSON(f *testing.F) {
	f.Add("knowledge", "content <&>", "p", "tag", 0.5, int64(1700000000123456789))
	f.Fuzz(func(t *testing.T, typ, content, project, tag string, confidence float64, nanos int64) {
		until := time.Unix(0, nanos).UTC()
		p := domain.MemoryCreated{MemoryType: domain.MemoryType(typ), Content: content, Project: project,
			Status: domain.Status(tag), Confidence: confidence, SourceChunkID: tag,
			DomainTags: []string{tag, content}, ValidUntil: &until}
		want, wantErr := json.Marshal(p)
		got, gotErr := p.AppendJSON(nil)
		if wantErr != nil {
			require.Error(t, gotErr)
			return
		}
		require.NoError(t, gotErr)
		require.Equal(t, string(want), string(got))
	})
}
