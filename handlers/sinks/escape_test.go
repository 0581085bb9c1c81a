package sinks

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/memledger/memledger/domain"
	"github.com/stretchr/testify/require"
)

func TestAlertLineEscapesControlCharacters(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"esc \x1b[31mred\x1b[0m", `esc \u001b[31mred\u001b[0m`},
		{"nul\x00byte", `nul\u0000byte`},
		{"line\u2028sep\u2029para", `line\u2028sep\u2029para`},
		{"tab\there", `tab\there`},
		{"del\x7f c1\u0085", `del\u007f c1\u0085`},
		{"bidi \u202eevil\u202c", `bidi \u202eevil\u202c`},
		{"a\\nb", `a\\nb`}, // a backslash is doubled: a real \n and a typed one differ
		{"crlf\r\n", `crlf\r\n`},
		{"plain ünïcödé 🙂", "plain ünïcödé 🙂"},
		{"bad \xff byte", `bad \ufffd byte`},
	} {
		a := sinkTestAlert(domain.SeverityInfo, tc.in, tc.in, nil)
		line := AlertLine(a)
		require.Equal(t, "[2026-04-16T21:54:10Z] [INFO] "+tc.want+": "+tc.want, line, "%q", tc.in)
		for _, r := range line {
			require.False(t, needsEscape(r) && r != '\\', "%q left in %q", r, line)
		}
	}
	// The context JSON: escaped by JSON already, and what JSON leaves (DEL, C1, bidi) too.
	a := sinkTestAlert(domain.SeverityInfo, "T", "M", map[string]any{"k": "x\x1b\x7f\u0085\u2028\u202e\\"})
	line := AlertLine(a)
	require.Equal(t, `[2026-04-16T21:54:10Z] [INFO] T: M {"k":"x\u001b\u007f\u0085\u2028\u202e\\"}`, line)
	var back map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, `[2026-04-16T21:54:10Z] [INFO] T: M `)), &back))
	require.Equal(t, a.Context, back, "the context stays valid JSON of the same value")
}

func TestDiscordWebhookURLForms(t *testing.T) {
	for _, u := range []string{
		"https://discord.com/api/webhooks/123456789012345678/abcDEF_-.xyz",
		"https://discordapp.com/api/webhooks/123/tok",
		"https://ptb.discord.com/api/webhooks/123/tok",
		"https://canary.discord.com/api/webhooks/123/tok",
		"https://canary.discordapp.com/api/webhooks/123/tok",
		"https://discord.com/api/v10/webhooks/123/tok",
		"https://discord.com/api/v9/webhooks/123/tok/",
		"https://DISCORD.COM/api/webhooks/123/tok?wait=true",
		"https://discord.com:443/api/webhooks/123/tok",
	} {
		require.True(t, IsDiscordWebhook(u), u)
	}
	for _, u := range []string{
		"https://discord.com.evil.example/api/webhooks/123/tok",
		"https://evildiscord.com/api/webhooks/123/tok",
		"https://discord.com/api/webhooks/123/tok/slack",  // takes Slack's payload
		"https://discord.com/api/webhooks/123/tok/github", // takes GitHub's
		"https://discord.com/channels/123/456",
		"https://hooks.example/api/webhooks/123/tok",
		"ftp://discord.com/api/webhooks/123/tok",
		"::not a url",
	} {
		require.False(t, IsDiscordWebhook(u), u)
	}
}

func TestDiscordPayloadHasNoEmptyField(t *testing.T) {
	a := sinkTestAlert(domain.SeverityWarning, "T", "", map[string]any{"empty": "", "blank": "  ", "": "no name", "nil": nil, "ok": "v"})
	data, err := json.Marshal(DiscordPayload(a))
	require.NoError(t, err)
	var p struct {
		Embeds []struct {
			Description *string `json:"description"`
			Fields      []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"fields"`
		} `json:"embeds"`
	}
	require.NoError(t, json.Unmarshal(data, &p))
	require.Len(t, p.Embeds, 1)
	require.Nil(t, p.Embeds[0].Description, "an empty message sends no description")
	require.Len(t, p.Embeds[0].Fields, 5)
	for _, f := range p.Embeds[0].Fields {
		require.NotEmpty(t, strings.TrimSpace(f.Name), "%s", data)
		require.NotEmpty(t, strings.TrimSpace(f.Value), "%s", data)
	}
}
