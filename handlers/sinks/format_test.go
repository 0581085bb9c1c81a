package sinks

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

// sinkTestAlert is an alert as the sinks get it.
func sinkTestAlert(sev domain.Severity, title, message string, ctx map[string]any) domain.Alert {
	if ctx == nil {
		ctx = map[string]any{}
	}
	return domain.Alert{ID: "0b6f7a1e-5c8e-4f57-9f7e-2f1c1d0e9a11", Severity: sev, Title: title, Message: message,
		Context: ctx, Timestamp: time.Date(2026, 4, 16, 21, 54, 10, 123456789, time.UTC), Seq: 7, Actor: "test"}
}

func TestAlertLine(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name string
		a    domain.Alert
		want string
	}{
		{"the documented shape", sinkTestAlert(domain.SeverityWarning, "title", "message", map[string]any{"context": "as JSON"}),
			`[2026-04-16T21:54:10Z] [WARNING] title: message {"context":"as JSON"}`},
		{"no context, no JSON", sinkTestAlert(domain.SeverityInfo, "T", "M", nil),
			`[2026-04-16T21:54:10Z] [INFO] T: M`},
		{"critical; keys sorted; numbers and nesting as JSON", sinkTestAlert(domain.SeverityCritical, "T", "M",
			map[string]any{"b": 2, "a": []any{1, "x"}, "c": map[string]any{"d": nil}}),
			`[2026-04-16T21:54:10Z] [CRITICAL] T: M {"a":[1,"x"],"b":2,"c":{"d":null}}`},
		{"newlines stay on one line", sinkTestAlert(domain.SeverityInfo, "two\nlines", "a\r\nb", nil),
			`[2026-04-16T21:54:10Z] [INFO] two\nlines: a\r\nb`},
		{"empty message", sinkTestAlert(domain.SeverityInfo, "T", "", nil), `[2026-04-16T21:54:10Z] [INFO] T: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, AlertLine(tc.a))
		})
	}

	// The time is shown in UTC, to the second.
	a := sinkTestAlert(domain.SeverityInfo, "T", "M", nil)
	a.Timestamp = time.Date(2026, 4, 16, 23, 54, 10, 999999999, cet)
	require.Equal(t, `[2026-04-16T22:54:10Z] [INFO] T: M`, AlertLine(a))
}

func TestAlertLineCutsContextAt500(t *testing.T) {
	prefix := `[2026-04-16T21:54:10Z] [WARNING] T: M `
	// ASCII: exactly 500 bytes of the JSON.
	long := sinkTestAlert(domain.SeverityWarning, "T", "M", map[string]any{"blob": strings.Repeat("x", 600)})
	full, err := json.Marshal(long.Context)
	require.NoError(t, err)
	require.Len(t, full, 611)
	line := AlertLine(long)
	require.Equal(t, prefix+string(full[:500]), line)
	require.Equal(t, 500, len(strings.TrimPrefix(line, prefix)))
	require.Equal(t, MaxLineContext, 500)

	// A JSON of exactly 500 characters is kept whole; 501 loses its last.
	exact := sinkTestAlert(domain.SeverityWarning, "T", "M", map[string]any{"blob": strings.Repeat("y", 500-len(`{"blob":""}`))})
	data, _ := json.Marshal(exact.Context)
	require.Len(t, data, 500)
	require.Equal(t, prefix+string(data), AlertLine(exact))
	exact.Context["blob"] = exact.Context["blob"].(string) + "y"
	data, _ = json.Marshal(exact.Context)
	require.Equal(t, prefix+string(data[:500]), AlertLine(exact))
	require.True(t, strings.HasSuffix(AlertLine(exact), `y"`), "the closing brace is cut")

	// Characters, not bytes: a multi-byte context is cut at 500 characters, never inside one.
	wide := sinkTestAlert(domain.SeverityWarning, "T", "M", map[string]any{"blob": strings.Repeat("é", 600)})
	cut := strings.TrimPrefix(AlertLine(wide), prefix)
	require.True(t, utf8.ValidString(cut))
	require.Equal(t, 500, utf8.RuneCountInString(cut))
	require.Equal(t, `{"blob":"`+strings.Repeat("é", 491), cut)
}

func TestTruncate(t *testing.T) {
	require.Equal(t, "", truncate("", 3))
	require.Equal(t, "abc", truncate("abc", 3))
	require.Equal(t, "ab", truncate("abc", 2))
	require.Equal(t, "", truncate("abc", 0))
	require.Equal(t, "éé", truncate("ééé", 2))
	require.Equal(t, "日本", truncate("日本語", 2))
	require.Equal(t, "日本語", truncate("日本語", 3))
}

func TestIsDiscordWebhook(t *testing.T) {
	for u, want := range map[string]bool{
		"https://discord.com/api/webhooks/1/abc":            true,
		"https://discordapp.com/api/webhooks/1/abc":         true,
		"https://canary.discord.com/api/webhooks/1/abc":     true,
		"https://ptb.discordapp.com/api/webhooks/1/abc":     true,
		"https://DISCORD.com/api/webhooks/1/abc":            true,
		"https://discord.com:443/api/webhooks/1/abc?wait=1": true,
		"https://discord.com/api/v10/webhooks/1/abc":        true,
		"https://discord.com/channels/1/2":                  false,
		"https://notdiscord.com/api/webhooks/1/abc":         false,
		"https://discord.com.example.org/api/webhooks/1/a":  false,
		"https://example.org/discord.com/api/webhooks/1/a":  false,
		"https://example.org/api/webhooks/1/abc":            false,
		"https://hooks.slack.com/services/T/B/X":            false,
		"http://127.0.0.1:8080/hook":                        false,
		"":                                                  false,
		"::not a url":                                       false,
	} {
		require.Equal(t, want, IsDiscordWebhook(u), "%q", u)
	}
}

// sinkTestEmbed is the embed of a Discord payload, decoded as Discord reads it.
type sinkTestEmbed struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Color       int    `json:"color"`
	Fields      []struct {
		Name   string `json:"name"`
		Value  string `json:"value"`
		Inline bool   `json:"inline"`
	} `json:"fields"`
	Timestamp string `json:"timestamp"`
}

func sinkTestDecodeEmbed(t *testing.T, data []byte) sinkTestEmbed {
	t.Helper()
	var body struct {
		Embeds []sinkTestEmbed `json:"embeds"`
	}
	require.NoError(t, json.Unmarshal(data, &body), "body: %s", data)
	require.Len(t, body.Embeds, 1, "body: %s", data)
	return body.Embeds[0]
}

func sinkTestPayload(t *testing.T, a domain.Alert) sinkTestEmbed {
	t.Helper()
	data, err := json.Marshal(DiscordPayload(a))
	require.NoError(t, err)
	return sinkTestDecodeEmbed(t, data)
}

func TestDiscordPayload(t *testing.T) {
	a := sinkTestAlert(domain.SeverityWarning, "Harness pass rate below threshold", "80.0% (8/10), below 85.0%",
		map[string]any{"pass_rate": 0.8, "threshold": 0.85, "total": 10, "note": "nightly", "nested": map[string]any{"k": "v"}})
	e := sinkTestPayload(t, a)
	require.Equal(t, "[WARNING] Harness pass rate below threshold", e.Title)
	require.Equal(t, "80.0% (8/10), below 85.0%", e.Description)
	require.Equal(t, 0xF1C40F, e.Color)
	require.Equal(t, "2026-04-16T21:54:10Z", e.Timestamp)
	var got []string
	for _, f := range e.Fields {
		require.True(t, f.Inline)
		got = append(got, f.Name+"="+f.Value)
	}
	require.Equal(t, []string{`nested={"k":"v"}`, "note=nightly", "pass_rate=0.8", "threshold=0.85", "total=10"}, got,
		"sorted by key; strings as they are, anything else as JSON")

	colours := map[domain.Severity]int{}
	for _, sev := range domain.Severities {
		colours[sev] = sinkTestPayload(t, sinkTestAlert(sev, "T", "M", nil)).Color
	}
	require.Equal(t, map[domain.Severity]int{domain.SeverityInfo: 0x3498DB, domain.SeverityWarning: 0xF1C40F,
		domain.SeverityCritical: 0xE74C3C}, colours)

	// No context, no fields.
	data, err := json.Marshal(DiscordPayload(sinkTestAlert(domain.SeverityInfo, "T", "M", nil)))
	require.NoError(t, err)
	require.NotContains(t, string(data), "fields")
}

func TestDiscordPayloadPerFieldLimits(t *testing.T) {
	ctx := map[string]any{}
	for i := range 30 {
		ctx[fmt.Sprintf("k%02d", i)] = "v"
	}
	ctx["k00"] = strings.Repeat("v", 2000)
	ctx[strings.Repeat("a", 300)] = "long name"
	a := sinkTestAlert(domain.SeverityCritical, strings.Repeat("t", 300), strings.Repeat("m", 5000), ctx)
	e := sinkTestPayload(t, a)
	require.Equal(t, 256, utf8.RuneCountInString(e.Title))
	require.True(t, strings.HasPrefix(e.Title, "[CRITICAL] ttt"))
	require.Equal(t, 4096, utf8.RuneCountInString(e.Description))
	require.Len(t, e.Fields, 25)
	for _, f := range e.Fields {
		require.LessOrEqual(t, utf8.RuneCountInString(f.Name), 256)
		require.LessOrEqual(t, utf8.RuneCountInString(f.Value), 1024)
	}
	require.Equal(t, strings.Repeat("a", 256), e.Fields[0].Name, "sorted by key, the long name first")
	require.Equal(t, "long name", e.Fields[0].Value)
	require.Equal(t, "k00", e.Fields[1].Name)
	require.Equal(t, strings.Repeat("v", 1024), e.Fields[1].Value)
	require.Equal(t, "k23", e.Fields[24].Name, "the first 25 keys are kept")
}

// Discord refuses (400) an embed whose title, description, field names and values together
// are over 6000 characters. An alert within memledger's own limits (message 4000 characters,
// context 8192 bytes of JSON) must still give a payload Discord accepts, else the webhook
// records a permanent delivery failure for it.
func TestDiscordPayloadWithinTotalLimit(t *testing.T) {
	a := sinkTestAlert(domain.SeverityCritical, strings.Repeat("t", domain.MaxAlertTitle), strings.Repeat("m", domain.MaxAlertMessage),
		map[string]any{"a": strings.Repeat("a", 1500), "b": strings.Repeat("b", 1500), "c": strings.Repeat("c", 1500)})
	_, err := domain.DecideAlert(domain.RaiseAlert{Severity: "critical", Title: a.Title, Message: a.Message, Context: a.Context},
		domain.Meta{EventID: "x", Actor: "test", Time: time.Now()})
	require.NoError(t, err, "the alert is within memledger's limits")

	e := sinkTestPayload(t, a)
	total := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
	for _, f := range e.Fields {
		total += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	require.LessOrEqual(t, total, 6000, "Discord refuses embeds over 6000 characters in total")
	require.Contains(t, e.Title, "ttt")
}
