package eventstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// fastSamples are events of the shapes the log holds: creations with every kind of content
// encode escapes (quotes, line breaks, <, > and &, control characters, U+2028, invalid UTF-8,
// which encode replaces), with and without note, correlation id, tags and expiry, and events
// of other types.
func fastSamples() []domain.Event {
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	at := time.Date(2026, 12, 3, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	var out []domain.Event
	for i, content := range []string{
		"plain", `a "quoted" word and a \ backslash`, "lines\nand\ttabs\r", "<b>&amp;</b>", "\x01\x1f control",
		"line\u2028separator", "naïve café, 日本語, 🙂", "bad \xff byte", "",
	} {
		meta := domain.Meta{EventID: "e-" + content, Actor: "actor \"a\"", Time: at}
		if i%2 == 0 {
			meta.Note, meta.CorrelationID = "note <"+content+">", "req-1"
		}
		p := domain.MemoryCreated{MemoryType: "knowledge", Content: content, Project: "p", Status: domain.StatusCandidate,
			Confidence: []float64{0, 0.5, 1, 1e-7, 0.123456789, 1e21}[i%6]}
		switch i % 3 {
		case 0:
			p.DomainTags, p.ValidUntil = []string{"a", "b \"c\""}, &until
		case 1:
			p.DomainTags = []string{}
		}
		ev := domain.NewEvent("m-"+content, meta, p)
		ev.Principal = "token-" + content
		out = append(out, ev)
	}
	out = append(out,
		domain.NewEvent("m-1", domain.Meta{EventID: "e-r", Actor: "a", Time: at}, domain.MemoryReinforced{}),
		domain.NewEvent("m-1", domain.Meta{EventID: "e-p", Actor: "a", Time: at}, domain.MemoryPromoted{}),
	)
	return out
}

// What encode writes, decodeFast reads, and as encoding/json does.
func TestDecodeFastReadsWhatEncodeWrites(t *testing.T) {
	c := newCodec()
	for _, ev := range fastSamples() {
		raw, err := c.encode(ev)
		require.NoError(t, err)
		fast, ok := c.decodeFast(raw, 7)
		require.True(t, ok, "%s", raw)
		slow, err := c.decodeJSON(raw, 7)
		require.NoError(t, err)
		require.Equal(t, slow, fast, "%s", raw)
	}
}

// FuzzDecodeFast holds decodeFast to encoding/json: whatever it reads, encoding/json reads the
// same, without error. The seeds are the encoded samples and the golden fixtures, which hold
// older versions too (read by encoding/json alone).
func FuzzDecodeFast(f *testing.F) {
	c := newCodec()
	for _, ev := range fastSamples() {
		raw, err := c.encode(ev)
		require.NoError(f, err)
		f.Add(raw)
	}
	golden, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(f, err)
	for _, name := range golden {
		raw, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, ok := c.decodeFast(raw, 3)
		if !ok {
			return
		}
		slow, err := c.decodeJSON(raw, 3)
		require.NoError(t, err, "%q", raw)
		require.Equal(t, slow, fast, "%q", raw)
	})
}

// FuzzDecodeFastOfEncoded: a creation of any content, note, tag and confidence, as encode
// writes it, is read by decodeFast, and as encoding/json reads it.
func FuzzDecodeFastOfEncoded(f *testing.F) {
	c := newCodec()
	f.Add("plain", "", "tag", 0.5)
	f.Add("a \"q\" \\ <&>\n\t\x01\u2028 🙂 \xff", "note \x00", "", 1e-7)
	f.Fuzz(func(t *testing.T, content, note, tag string, confidence float64) {
		p := domain.MemoryCreated{MemoryType: "knowledge", Content: content, Project: tag, Status: domain.StatusActive,
			Confidence: confidence, DomainTags: []string{tag, content}}
		ev := domain.NewEvent("m", domain.Meta{EventID: "e", Actor: content, Note: note, Time: time.Unix(0, 1).UTC()}, p)
		raw, err := c.encode(ev)
		if err != nil {
			return // a confidence that is not finite has no JSON form
		}
		fast, ok := c.decodeFast(raw, 1)
		require.True(t, ok, "%q", raw)
		slow, err := c.decodeJSON(raw, 1)
		require.NoError(t, err)
		require.Equal(t, slow, fast, "%q", raw)
	})
}

// BenchmarkDecodeFastVsJSON is a creation's decode by decodeFast and by encoding/json, the
// same stored event (one of the samples, with escapes in its strings) on each side.
func BenchmarkDecodeFastVsJSON(b *testing.B) {
	c := newCodec()
	raw, err := c.encode(fastSamples()[1])
	require.NoError(b, err)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, ok := c.decodeFast(raw, 1); !ok {
				b.Fatal("not read")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.decodeJSON(raw, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A payload nested as deep as encoding/json refuses, the envelope counted, is refused the same.
func TestDecodeFastRefusesWhatEncodingJSONRefuses(t *testing.T) {
	c := newCodec()
	raw, err := c.encode(domain.NewEvent("m", domain.Meta{EventID: "e", Actor: "a", Time: time.Unix(0, 1).UTC()}, domain.MemoryPromoted{}))
	require.NoError(t, err)
	deep := strings.Repeat(`{"x":`, 10000) + "1" + strings.Repeat("}", 10000)
	i := strings.Index(string(raw), `"data":`) + len(`"data":`)
	nested := append(append([]byte{}, raw[:i]...), deep+"}"...)
	_, err = c.decodeJSON(nested, 1)
	require.Error(t, err, "encoding/json refuses it")
	_, ok := c.decodeFast(nested, 1)
	require.False(t, ok)
	_, err = c.decode(nested, 1)
	require.ErrorIs(t, err, ErrMalformed)
}
